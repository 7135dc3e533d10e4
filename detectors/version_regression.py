"""Version regression: a new model_version against the version it replaced.

Per (model, route, gateway, model_version) the detector keeps a log-latency EWMA, a
latency sketch (p50/p95) and decayed error counts. When a version first appears on a
(model, route, gateway) whose current version has ``min_reference`` requests, that
version's numbers are copied as the new version's reference. For ``compare_window_s``
after it appears, each new-version row's log latency is standardised against the
reference and fed to a one-sided CUSUM (drift ``cusum_k``); the row score is
``squash(cusum, h)``. A finding names both versions when the CUSUM is past ``h`` and
p95 is at least ``min_ratio`` times the old p95, or when the new version's error rate
is (Wilson lower bound) above ``max(3 x old, old + 2 %)``.

``h`` comes from the alert budget (``detectors.budget.run_length_threshold``, the helper
the feedback detector uses): ``(z - k)`` is the log-likelihood ratio of "shifted by
``2k``" against "as before" divided by ``2k`` for standardised Gaussian ``z``, so a CUSUM
past ``log(ARL) / 2k`` has an in-control run length of at least ARL rows (Lorden). ARL
is the rows the version is compared on in a series-week (its own request rate x
``min(compare_window_s, 1 week)``) per budgeted false alert: a busy version and a quiet
one page falsely at most at the budget. ``cusum_h``, when set, replaces it.

Not budgeted, on purpose: ``min_ratio`` and ``min_abs_error_rate`` are physical floors
(a regression too small to matter is not paged however certain), and the error-rate
test is a Wilson bound at ``confidence_z`` on decayed counts re-read every batch, whose
looks are not independent evaluations a run-length budget could count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import Field

from detectors import kernels
from detectors._tracking import FiringState, clean_ts, fmt, groups
from detectors.base import Detector, DetectorConfig, DetectorOutput, Finding, Migration, squash
from detectors.budget import WEEK_S, BudgetedConfig, run_length_threshold
from detectors.registry import Column, SeriesState
from schemas.columns import STATUS_CODES, InferenceColumns

_GAMMA = 1.03 / 0.97
_NB = 64
_HL = 3600.0
_LABELS = ("model", "route", "gateway", "model_version")
_FLOAT_FILLS = {
    "mean": 0.0,
    "var": 0.0,
    "weight": 0.0,
    "last_t": -np.inf,
    "frozen": np.nan,
    "err_n": 0.0,
    "err_k": 0.0,
    "err_t": -np.inf,
    "total": 0.0,
    "ref_t": 0.0,
    "first_seen": np.nan,
    "s_hi": 0.0,
    "s_lo": 0.0,
    "ref_mean": np.nan,
    "ref_sd": np.nan,
    "ref_rate": np.nan,
    "ref_p95": np.nan,
}
# Per series: the floats above, and a latency sketch (bucket counts and offset).
_COLUMNS = {k: Column(v) for k, v in _FLOAT_FILLS.items()} | {
    "counts": Column(0.0, np.float32, (_NB,)),
    "offset": Column(0, np.int64),
}
# The budget's threshold (log-likelihood-ratio units) never goes below this: a version
# seen for a minute has no request rate yet.
_MIN_LLR_H = 6.0


class VersionRegressionConfig(BudgetedConfig):
    min_reference: float = Field(
        200.0,
        ge=1,
        description=(
            "Requests the replaced version needs before a new version is compared with it."
        ),
    )
    min_compared: float = Field(
        50.0, ge=1, description="Requests of the new version before a verdict."
    )
    compare_window_s: float = Field(
        24 * 3600.0,
        gt=0,
        description=("How long after a version appears it is compared with the one it replaced."),
    )
    cusum_k: float = Field(
        0.5, gt=0, description="CUSUM drift (slack) on standardised log latency."
    )
    cusum_h: float | None = Field(
        None,
        gt=0,
        description="Fixed CUSUM threshold that scores 0.5; unset (the default), it comes "
        "from the alert budget and the version's request rate.",
    )
    min_ratio: float = Field(
        1.2, ge=1, description="New p95 latency must be at least this many times the old p95."
    )
    min_log_sd: float = Field(
        0.05, gt=0, description="Floor of the reference's log-latency standard deviation."
    )
    error_factor: float = Field(
        3.0,
        ge=1,
        description=(
            "New error rate (Wilson lower bound) above this many times the old one is a regression."
        ),
    )
    min_abs_error_rate: float = Field(
        0.02,
        ge=0,
        description=(
            "The new error rate must also be at least this much above the old one (0.02 = "
            "2 points)."
        ),
    )
    confidence_z: float = Field(
        3.0, gt=0, description="z of the Wilson lower bound on the new version's error rate."
    )
    series_ttl_s: float = Field(
        7 * 86400.0,
        gt=0,
        description="A series with no events for this long is forgotten (state freed).",
    )


def _from_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """State version 1 kept a registry, a dict of float arrays and the sketch arrays."""
    state = dict(payload["state"])
    st = SeriesState(_LABELS, _COLUMNS, ttl_s=1.0)
    arrays = {**state.pop("f"), "counts": state.pop("counts"), "offset": state.pop("offset")}
    st.adopt(state.pop("registry"), arrays)
    state["st"] = st
    return {**payload, "state": state}


class VersionRegressionDetector(Detector[InferenceColumns, VersionRegressionConfig]):
    name: ClassVar[str] = "version_regression"
    consumes: ClassVar[type[InferenceColumns]] = InferenceColumns
    Config: ClassVar[type[DetectorConfig]] = VersionRegressionConfig
    state_version: ClassVar[int] = 2
    state_migrations: ClassVar[Mapping[int, Migration]] = {1: _from_v1}

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.st = SeriesState(_LABELS, _COLUMNS, ttl_s=self.cfg.series_ttl_s)
        self.current: dict[tuple[str, ...], int] = {}  # group -> current version sid
        self.ref_version: dict[int, str] = {}
        self.firing = FiringState()

    @property
    def bytes_per_series(self) -> float:
        return float(self.st.bytes_per_series())

    def _p95(self, sid: int, now: float) -> tuple[float, float]:
        q, eff = kernels.sketch_quantiles(
            np.array([sid]),
            self.st.counts,
            self.st.offset,
            self.st.total,
            self.st.arrays["ref_t"],
            now,
            _HL,
            _GAMMA,
            np.array([0.95]),
        )
        return float(q[0, 0]), float(eff[0])

    def _adopt(self, sid: int, prev: int, now: float) -> None:
        """Copy the previous version's numbers as ``sid``'s reference."""
        f = self.st.arrays
        f["ref_mean"][sid] = f["mean"][prev]
        f["ref_sd"][sid] = max(math.sqrt(f["var"][prev]), self.cfg.min_log_sd)
        f["ref_rate"][sid] = (f["err_k"][prev] + 0.5) / (f["err_n"][prev] + 1.0)
        f["ref_p95"][sid] = self._p95(prev, now)[0]
        self.ref_version[sid] = self.st.registry.key(prev)[3]

    def update(self, batch: InferenceColumns) -> DetectorOutput:
        n = len(batch)
        scores = np.zeros(n, dtype=np.float64)
        if n == 0:
            return DetectorOutput(scores, [])
        cfg = self.cfg
        ts = clean_ts(batch.ts)
        sids = self.st.ids(batch, ts)
        f = self.st.arrays  # after ids(), which may grow the arrays
        for sid, rows in groups(sids):
            if math.isnan(f["first_seen"][sid]):
                f["first_seen"][sid] = float(ts[rows].min())
                group = self.st.registry.key(sid)[:3]
                prev = self.current.get(group)
                if prev is not None and prev != sid and f["weight"][prev] >= cfg.min_reference:
                    self._adopt(sid, prev, float(ts[rows].min()))
                self.current[group] = sid
        logx = np.log(np.maximum(batch.latency_ms, 1e-3))
        kernels.ewma_update(
            sids,
            ts,
            logx,
            f["mean"],
            f["var"],
            f["weight"],
            f["last_t"],
            f["frozen"],
            _HL,
            1.0,
            1e-12,
            -np.inf,
            np.inf,
            np.inf,
        )
        kernels.sketch_add(
            sids,
            ts,
            batch.latency_ms,
            f["counts"],
            f["offset"],
            f["total"],
            f["ref_t"],
            _GAMMA,
            1e-3,
            _HL,
            0.95,
        )
        errs = np.isin(batch.status, [STATUS_CODES["error"], STATUS_CODES["timeout"]])
        kernels.decayed_counts_update(
            sids,
            ts,
            errs.astype(np.float64),
            f["err_n"],
            f["err_k"],
            f["err_t"],
            _HL,
            np.zeros(f["err_n"].size, dtype=np.bool_),
        )
        compared = np.isfinite(f["ref_mean"][sids])
        compared &= ts - f["first_seen"][sids] <= cfg.compare_window_s
        if compared.any():
            idx = np.flatnonzero(compared)
            s = sids[idx]
            z = (logx[idx] - f["ref_mean"][s]) / f["ref_sd"][s]
            hi, _ = kernels.cusum_update(s, z, f["s_hi"], f["s_lo"], cfg.cusum_k, np.inf)
            scores[idx] = squash(hi / self._thresholds(s), 1.0)
        now = float(ts.max())
        findings = [x for sid in np.unique(sids).tolist() if (x := self._judge(sid, now))]
        self._evict(now)
        return DetectorOutput(scores, findings)

    def _thresholds(self, sids: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """The CUSUM threshold per row's series (``cusum_h`` or the budget's)."""
        uniq, inv = np.unique(sids, return_inverse=True)
        return np.array([self._h(sid) for sid in uniq.tolist()])[inv]

    def _h(self, sid: int) -> float:
        """The CUSUM threshold of series ``sid``: ``log(ARL) / 2k`` with ARL the rows it
        is compared on per series-week per budgeted false alert."""
        cfg = self.cfg
        if cfg.cusum_h is not None:
            return cfg.cusum_h
        f = self.st.arrays
        # The EWMA weight is a count decayed by half per _HL: at a steady rate r it is
        # r x _HL / ln 2 x (1 - 2^(-age / _HL)) after ``age`` seconds.
        age = max(float(f["last_t"][sid] - f["first_seen"][sid]), 60.0)
        span = _HL / math.log(2.0) * -math.expm1(-age * math.log(2.0) / _HL)
        rate = max(float(f["weight"][sid]) / max(span, 60.0), 1e-6)
        rows = rate * min(cfg.compare_window_s, WEEK_S)
        budget = cfg.budget_for(self.st.labels(sid))
        return float(run_length_threshold(rows, budget, _MIN_LLR_H)) / (2.0 * cfg.cusum_k)

    def _evict(self, now: float) -> None:
        """Forget versions idle past ``series_ttl_s`` (a fleet rolls out new versions for
        ever: without this a long-running worker keeps every version it ever saw)."""
        gone = self.st.evict(now)
        if gone:
            self.current = {g: sid for g, sid in self.current.items() if sid not in gone}
            for sid in gone:
                self.ref_version.pop(sid, None)
            self.firing.forget_series(gone, at=None)

    def _judge(self, sid: int, now: float) -> Finding | None:
        cfg = self.cfg
        f = self.st.arrays
        if math.isnan(f["ref_mean"][sid]):
            return None
        p95, count = self._p95(sid, now)
        ref_p95 = float(f["ref_p95"][sid])
        ratio = p95 / ref_p95 if ref_p95 > 0 else 1.0
        n, k = np.array([f["err_n"][sid]]), np.array([f["err_k"][sid]])
        lower = float(kernels.wilson_lower(k, n, cfg.confidence_z)[0])
        ref_rate = float(f["ref_rate"][sid])
        level = max(ref_rate * cfg.error_factor, ref_rate + cfg.min_abs_error_rate)
        active = now - f["first_seen"][sid] <= cfg.compare_window_s and count >= cfg.min_compared
        h = self._h(sid)
        slow = bool(f["s_hi"][sid] >= h and ratio >= cfg.min_ratio)
        failing = lower > level
        stat = max(f["s_hi"][sid] / h if ratio >= cfg.min_ratio else 0.0, lower / level)
        verdict = self.firing.step(sid, bool(active and (slow or failing)))
        if verdict is None:
            return None
        model, route, gateway, version = self.st.registry.key(sid)
        old = self.ref_version.get(sid, "?")
        known = math.isfinite(ref_p95)
        return self.finding(
            "version_regression.latency" if slow or not failing else "version_regression.errors",
            self.st.labels(sid),
            now,
            float(squash(stat, 1.0)),
            verdict,
            observed=p95 if math.isfinite(p95) else None,
            expected=ref_p95 if known else None,
            upper=float(f["ref_p95"][sid] * cfg.min_ratio) if known else None,
            severity="error",
            explanation=f"{model} {version} vs {old} on {gateway} {route}: p95 latency "
            f"{fmt(p95)} ms vs {fmt(ref_p95)} ms ({ratio - 1:+.0%}), "
            f"error rate >= {lower:.1%} vs {ref_rate:.1%}",
            scope={"model": model, "model_version": version, "gateway": gateway},
        )
