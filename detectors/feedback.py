"""Decline in the quality of a model version, per (model, model_version): ratings
joined to the version's own requests, in one sequential test.

Ratings are sparse (a few per cent of requests), so an incident of a minute or two
leaves a few dozen: too few to be sure of alone. A real quality regression shows in the
version's requests too (more refusals, more answers cut off at max_tokens), weakly in
each. The detector reads both topics (``joins``) and adds every observation's evidence
to one CUSUM per version, so weak but consistent evidence across signals adds up:

* a rating ``x`` in [-1, 1] adds ``-tilt * x - log E0[exp(-tilt * x)]``, ``E0`` a slow
  EWMA of ``exp(-tilt * x)`` over the version's own ratings;
* a request that says whether it was refused, or whether it was truncated, adds the
  log-likelihood ratio of "that rate is ``rate_ratio`` times its baseline" against
  "it is its baseline" (``detectors._quality.bernoulli_llr``), a slow per-version rate.

Each baseline is discounted by a margin of its own standard error and only counts
after a warm-up. Every increment then has ``E0[exp(llr)] <= 1``, so ``S = max(0, S +
llr)`` crossing ``h`` has an in-control run length of at least ``exp(h)`` observations
(Lorden). ``h`` comes from the alert budget: the series' observations per budgeted
interval (its own observation rate x one week / ``false_alerts_per_series_week``),
``h = log`` of that, so a busy version and a quiet one both page falsely at most at
the budget. ``S`` is capped at 1.5 h so an episode ends soon after recovery; an episode
lasts until ``S`` halves. Only declines count (happier users, fewer refusals are not
incidents). The explanation names each signal that moved, observed against usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from detectors._quality import F64, I64, RATING, REFUSAL, SIGNALS, TRUNCATION, signal_matrix
from detectors._tracking import FiringState, clean_ts, fmt, groups
from detectors.base import Detector, DetectorConfig, DetectorOutput, Finding, Migration
from detectors.budget import BudgetedConfig
from detectors.kernels import evidence as kern
from detectors.registry import Column, SeriesState
from schemas.columns import Columns, FeedbackColumns, InferenceColumns

_LABELS = ("model", "model_version")
_RATES = {REFUSAL: ("refusals", 0), TRUNCATION: ("truncations (max_tokens)", 1)}
# Per series: the rating baseline (mean, E[exp(-tilt x)], E[exp(-2 tilt x)], ratings
# seen); the refusal and truncation baselines (rates, rows seen); the CUSUM; what its
# current run is made of (per signal: sum, count); the observations judged and the
# time of the first (their rate sets the threshold).
_COLUMNS = {
    "rating": Column(0.0, shape=(4,)),
    "rate_p": Column(0.0, shape=(2,)),
    "rate_n": Column(0.0, shape=(2,)),
    "s": Column(0.0),
    "run": Column(0.0, shape=(len(SIGNALS), 2)),
    "ev_n": Column(0.0),
    "ev_t0": Column(np.nan),
}
# The threshold never goes below this (a series seen for a minute has no rate yet).
_MIN_THRESHOLD = 6.0


class FeedbackConfig(BudgetedConfig):
    # Exponential tilt of the alternative; 1 targets drops of ~0.3-0.6 points on the
    # [-1, 1] scale, and drops below ~tilt * variance / 2 never accumulate.
    tilt: float = Field(
        1.0,
        gt=0,
        le=5,
        description=(
            "Exponential tilt of the ratings' alternative; 1 targets rating drops of "
            "~0.3-0.6 on the [-1, 1] scale."
        ),
    )
    slow_alpha: float = Field(
        0.002,
        gt=0,
        le=1,
        description="Learning rate of the rating baseline, per rating (~1000 ratings).",
    )
    declined_learning: float = Field(
        0.1, ge=0, le=1, description="Factor on every learning rate while a decline is signalled."
    )
    # A baseline fitted to fewer ratings is too noisy for the CUSUM's calibration.
    warmup: int = Field(
        300, ge=1, description="Ratings the baseline learns from before ratings count."
    )
    # 2, not 1: judged at every rating the CUSUM meets more of the baseline's luck; 1
    # paged on 6 of 20 ordinary streams after a lucky warm-up.
    baseline_margin: float = Field(
        2.0,
        ge=0,
        description=(
            "Each rating's evidence is discounted by this many standard errors of the "
            "baseline, so a lucky baseline does not turn ordinary ratings into evidence."
        ),
    )
    requests: bool = Field(
        True,
        description=(
            "Join the version's requests (refusals, truncations at max_tokens) to its "
            "ratings; false reads ratings only."
        ),
    )
    rate_ratio: float = Field(
        1.6,
        gt=1,
        le=10,
        description=(
            "The refusal and truncation rates' alternative: this many times the baseline "
            "(rises above ~1.3x accumulate evidence)."
        ),
    )
    rate_alpha: float = Field(
        5e-5,
        gt=0,
        le=1,
        description="Learning rate of the refusal and truncation baselines, per request.",
    )
    rate_warmup: int = Field(
        2000, ge=1, description="Requests a rate baseline learns from before it counts."
    )
    rate_margin: float = Field(
        1.0,
        ge=0,
        description="Rate baselines are raised by this many standard errors before judging.",
    )
    series_ttl_s: float = Field(
        7 * 86400.0,
        gt=0,
        description="A version with no ratings or requests for this long is forgotten.",
    )


def _from_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """State version 1 kept a (series x 7) matrix with named row constants."""
    state = dict(payload["state"])
    old = np.asarray(state.pop("state_arr"))
    names = ("mean", "mgf", "s", "n", "run_sum", "run_n", "mgf2")
    st = SeriesState(_LABELS, {n: Column(0.0) for n in names}, ttl_s=1.0)
    st.adopt(state.pop("registry"), {n: old[:, i] for i, n in enumerate(names)})
    state["st"] = st
    return {**payload, "state": state}


def _from_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 2 judged ratings alone against a fixed threshold: the rating baselines
    and the CUSUM carry over (its run becomes the rating signal's); the request
    signals and the observation rate start learning."""
    state = dict(payload["state"])
    old = state["st"].arrays
    st = SeriesState(_LABELS, _COLUMNS, ttl_s=state["st"].registry.ttl_s)
    run = np.zeros((old["s"].shape[0], len(SIGNALS), 2))
    run[:, RATING, 0] = old["run_sum"]
    run[:, RATING, 1] = old["run_n"]
    rating = np.stack([old["mean"], old["mgf"], old["mgf2"], old["n"]], axis=1)
    st.adopt(state["st"].registry, {"rating": rating, "s": old["s"], "run": run})
    state["st"] = st
    # The fixed threshold gave way to the alert budget (the default one).
    params = {k: v for k, v in payload["params"].items() if k != "threshold"}
    return {**payload, "params": params, "state": state}


class FeedbackDetector(Detector[FeedbackColumns | InferenceColumns, FeedbackConfig]):
    name: ClassVar[str] = "feedback"
    consumes: ClassVar[type[Columns]] = FeedbackColumns
    joins: ClassVar[tuple[type[Columns], ...]] = (InferenceColumns,)
    Config: ClassVar[type[DetectorConfig]] = FeedbackConfig
    state_version: ClassVar[int] = 3
    state_migrations: ClassVar[Mapping[int, Migration]] = {1: _from_v1, 2: _from_v2}

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.st = SeriesState(_LABELS, _COLUMNS, ttl_s=self.cfg.series_ttl_s)
        self.firing = FiringState()

    @property
    def bytes_per_series(self) -> float:
        return float(self.st.bytes_per_series())

    def state(self) -> dict[str, Any]:
        # Learned state only: the config comes from the snapshot's params (an older
        # release's pickled config would lack fields this one has).
        return {"st": self.st, "firing": self.firing}

    def set_state(self, state: dict[str, Any]) -> None:
        self.st, self.firing = state["st"], state["firing"]

    def update(self, batch: FeedbackColumns | InferenceColumns) -> DetectorOutput:
        n = len(batch)
        scores = np.zeros(n, dtype=np.float64)
        if n == 0 or (isinstance(batch, InferenceColumns) and not self.cfg.requests):
            return DetectorOutput(scores, [])
        raw_ts = clean_ts(batch.ts)
        # Row by row in event time: the evidence does not depend on the batching.
        order = np.argsort(raw_ts, kind="stable")
        ids = self.st.ids(batch, raw_ts)[order]
        ts = raw_ts[order]
        st = self.st
        path, h = kern.quality_update(
            ids,
            ts,
            signal_matrix(batch)[order],
            self._budgets(),
            st.rating,
            st.rate_p,
            st.rate_n,
            st.s,
            st.run,
            st.ev_n,
            st.ev_t0,
            self._params,
        )
        scores[order] = path / (path + h)
        findings = self._findings(ids, ts, path, h)
        self.firing.forget_series(self.st.evict(float(ts.max())), at=None)
        return DetectorOutput(scores, findings)

    @property
    def _params(self) -> F64:
        cfg = self.cfg
        prm = np.zeros(kern.N_PARAMS)
        prm[kern.TILT], prm[kern.SLOW_ALPHA] = cfg.tilt, cfg.slow_alpha
        prm[kern.DECLINED], prm[kern.WARMUP] = cfg.declined_learning, cfg.warmup
        prm[kern.MARGIN], prm[kern.RATE_ALPHA] = cfg.baseline_margin, cfg.rate_alpha
        prm[kern.RATE_RATIO], prm[kern.RATE_WARMUP] = cfg.rate_ratio, cfg.rate_warmup
        prm[kern.RATE_MARGIN], prm[kern.MIN_H] = cfg.rate_margin, _MIN_THRESHOLD
        return prm

    def _budgets(self) -> F64:
        """False alerts per week each series may raise (its label override, if any)."""
        cfg = self.cfg
        out = np.full(self.st.s.shape[0], cfg.alert_budget.false_alerts_per_series_week)
        if cfg.alert_budget_overrides:
            for sid in self.st.registry.active_ids().tolist():
                out[sid] = cfg.budget_for(self.st.labels(sid))
        return out

    def _findings(self, ids: I64, ts: F64, path: F64, h: F64) -> list[Finding]:
        """Per version in the batch: anomalous from the row whose evidence crossed ``h``
        while it stays above ``h / 2``; one recovery after."""
        out: list[Finding] = []
        for sid, rows in groups(ids):
            rows = np.sort(rows)
            s_path, h_path = path[rows], h[rows]
            crossed = np.flatnonzero(s_path >= h_path)
            was = sid in self.firing.firing
            end, h_end = float(s_path[-1]), float(h_path[-1])
            verdict = self.firing.step(sid, crossed.size > 0 or (was and end >= h_end / 2))
            if verdict is None:
                continue
            at = crossed[0] if verdict and not was else rows.size - 1
            s = float(s_path.max()) if verdict else end
            out.append(self._finding(sid, float(ts[rows[at]]), s, float(h_path[at]), verdict))
        return out

    def _moved(self, sid: int) -> list[tuple[float, str, float, float]]:
        """(evidence, phrase, observed, usual) per signal of the current run that moved
        towards worse, strongest first."""
        cfg, st = self.cfg, self.st
        run = st.run[sid]
        out: list[tuple[float, str, float, float]] = []
        cnt = float(run[RATING, 1])
        if cnt > 0:
            obs, usual = float(run[RATING, 0]) / cnt, float(st.rating[sid, 0])
            log_mgf = float(np.log(max(st.rating[sid, 1], 1e-300)))
            ev = -cfg.tilt * float(run[RATING, 0]) - cnt * log_mgf
            if obs < usual:
                out.append(
                    (
                        ev,
                        f"ratings averaged {fmt(obs)} over {int(cnt)} (usually {fmt(usual)})",
                        obs,
                        usual,
                    )
                )
        for j, (what, r) in _RATES.items():
            cnt = float(run[j, 1])
            if cnt <= 0:
                continue
            hits = float(run[j, 0])
            obs, usual = hits / cnt, float(st.rate_p[sid, r])
            l1, l0 = kern.bernoulli_llr(
                usual, float(st.rate_n[sid, r]), cfg.rate_alpha, cfg.rate_ratio, cfg.rate_margin
            )
            ev = hits * float(l1) + (cnt - hits) * float(l0)
            if obs > usual:
                phrase = f"{what} {obs:.1%} of {int(cnt)} requests (usually {usual:.1%})"
                out.append((ev, phrase, obs, usual))
        out.sort(key=lambda m: -m[0])
        return out

    def _finding(self, sid: int, ts: float, s: float, h: float, verdict: bool) -> Finding:
        labels = self.st.labels(sid)
        who = f"{labels['model']} {labels['model_version']}"
        moved = self._moved(sid) if verdict else []
        observed = expected = None
        text = f"quality of {who} is back to normal (user feedback, refusals, truncations)"
        if verdict:
            parts = "; ".join(m[1] for m in moved) or "no single signal stands out"
            text = (
                f"quality of {who} declined: {parts}; evidence {s:.1f} over the alert "
                f"budget's threshold {h:.1f}"
            )
            if moved:
                observed, expected = moved[0][2], moved[0][3]
        return self.finding(
            "feedback.decline",
            labels,
            ts,
            # The episode holds (hysteresis) until the evidence halves: it stays hot.
            max(s / (s + h), 0.5 if verdict else 0.0),
            verdict,
            observed=observed,
            expected=expected,
            explanation=text,
        )
