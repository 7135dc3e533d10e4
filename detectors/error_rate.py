"""Error and timeout rates per (model, model_version, gateway), with low-count handling.

For each rate (status ``error``, status ``timeout``) the detector keeps exponentially
decayed request/failure counts in event time: a fast window (``window_half_life_s``)
and a slow baseline (``baseline_half_life_s``). The statistic is the Wilson lower
bound (at ``confidence_z``) of the window's rate divided by the alert level
``max(baseline * rate_factor, baseline + min_abs_rate)``; the row score is
``squash(statistic, 1)``, so 0.5 means "the window's rate is, with confidence, at the
alert level". With few requests the lower bound is far below the raw rate: 1 error out
of 2 requests is not an alert. The baseline is a beta-smoothed rate (a prior of
``prior_rate`` worth ``prior_requests``) and stops learning rows whose statistic is above
``learn_gate`` (half the alert level by default), for at most ``max_freeze_s``; then the
window's rate becomes the baseline (the new normal).

A burst window (``burst_half_life_s``, 5 s) is judged the same way beside it, at a
stricter ``burst_confidence_z`` and only with ``burst_min_requests`` behind it. The
two-minute window dilutes a sudden burst in the normal traffic it already holds (a
75 % failure burst needs ~1 s there at 650 requests/s after half a minute, ~5 s once
the window is full); the burst window sees it within a few hundred milliseconds, and
its z of 5 keeps its few requests from paging on chance clusters.

Alert budget (``alert_budget``, ``alert_budget_overrides``: ``detectors.budget``): each
window is a sequential test whose counts renew about once per half-life, so a series
makes one independent evaluation per ``window_half_life_s`` (``burst_half_life_s`` for
the burst window). Its ``confidence_z`` is the z whose one-sided tail is the budget's
share of those evaluations (0.5 false alerts a week: 3.72 for the 2-minute window, 4.46
for the 5 s burst window), per series from its labels; ``confidence_z`` /
``burst_confidence_z``, when set, fix it instead. The alert level stays a hard floor:
however sure the bound, a rate is an alert only at ``rate_factor`` times its baseline
and ``min_abs_rate`` above it, so a perfectly steady series never pages on noise.

Localisation: while a series' rate is raised, the serving hosts of its failures are
counted (fading with the window); when at least 80 % come from one host the finding
names it (``host`` label), so a GPU alert on that host can inhibit it. If the failures
move elsewhere, that episode ends (a recovery) and a new one starts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from detectors import kernels
from detectors._error_rate_config import ErrorRateConfig as ErrorRateConfig
from detectors._tracking import Culprits, FiringState, clean_ts, dominant_of, fmt, labels_of
from detectors.base import (
    Detector,
    DetectorConfig,
    DetectorOutput,
    Finding,
    Migration,
    squash,
)
from detectors.budget import budget_z
from detectors.registry import Column, SeriesState
from schemas.columns import STATUS_CODES, InferenceColumns

RATES = ("error", "timeout")
F64 = npt.NDArray[np.float64]
_LABELS = ("model", "model_version", "gateway")
# Per (series, rate) slot (sid * 2 + rate): decayed request and failure counts and
# their time, of the fast window, the burst window and the slow baseline.
_COLUMNS = {
    f"{w}_{c}": Column(-np.inf if c == "t" else 0.0)
    for w in ("fast", "burst", "slow")
    for c in ("n", "k", "t")
} | {"frozen_since": Column(np.nan)}


def _from_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """State version 2 had no per-series thresholds (they are set again from the budget
    as series show up)."""
    state = {k: v for k, v in payload["state"].items() if k != "config"}  # params rule
    return {**payload, "state": {**state, "z_of_slot": {}}}


def _from_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """State version 1 kept a registry and a dict of arrays (older ones without the
    burst window's, which start empty)."""
    state = dict(payload["state"])
    st = SeriesState(_LABELS, _COLUMNS, ttl_s=1.0, slots=len(RATES))
    st.adopt(state.pop("registry"), state.pop("arrays"))
    state["st"] = st
    return {**payload, "state": state}


class ErrorRateDetector(Detector[InferenceColumns, ErrorRateConfig]):
    name: ClassVar[str] = "error_rate"
    consumes: ClassVar[type[InferenceColumns]] = InferenceColumns
    Config: ClassVar[type[DetectorConfig]] = ErrorRateConfig
    state_version: ClassVar[int] = 3
    state_migrations: ClassVar[Mapping[int, Migration]] = {1: _from_v1, 2: _from_v2}

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.st = SeriesState(_LABELS, _COLUMNS, ttl_s=self.cfg.series_ttl_s, slots=len(RATES))
        self.firing = FiringState()
        self.culprits = Culprits()
        self.fail_hosts: dict[int, dict[str, float]] = {}
        self.fail_t: dict[int, float] = {}
        # (fast, burst) z of slots whose budget may differ from the default (only kept
        # where budget overrides are configured).
        self.z_of_slot: dict[int, tuple[float, float]] = {}

    @property
    def bytes_per_series(self) -> float:
        return float(self.st.bytes_per_series())

    def _baseline(self, n: F64, k: F64) -> F64:
        cfg = self.cfg
        out: F64 = (k + cfg.prior_rate * cfg.prior_requests) / (n + cfg.prior_requests)
        return out

    def _budget_zs(self, budget: float) -> tuple[float, float]:
        """(fast, burst) window z for a budget, unless fixed by the config."""
        cfg = self.cfg
        fast = cfg.confidence_z or budget_z(budget, cfg.window_half_life_s)
        burst = cfg.burst_confidence_z or budget_z(budget, max(cfg.burst_half_life_s, 1e-3))
        return fast, burst

    def _z(self, slots: npt.NDArray[np.int64], burst: bool) -> F64:
        """Per slot, the window's z: the default budget's, or the one its labels select."""
        cfg = self.cfg
        default = self._budget_zs(cfg.alert_budget.false_alerts_per_series_week)[int(burst)]
        z = np.full(slots.shape, default)
        if not cfg.alert_budget_overrides:
            return z
        for i, slot in enumerate(slots.tolist()):
            zs = self.z_of_slot.get(slot)
            if zs is None:
                labels = self.st.labels(slot // len(RATES))
                zs = self.z_of_slot[slot] = self._budget_zs(cfg.budget_for(labels))
            z[i] = zs[int(burst)]
        return z

    def _statistic(
        self, n: F64, k: F64, base: F64, slots: npt.NDArray[np.int64], burst: bool = False
    ) -> F64:
        cfg = self.cfg
        enough = cfg.burst_min_requests if burst else cfg.min_requests
        if self.cfg.alert_budget_overrides:
            z = self._z(slots, burst)
            lower = np.zeros(z.shape)
            for zi in np.unique(z).tolist():  # the z of each budget present
                sel = z == zi
                lower[sel] = kernels.wilson_lower(k[sel], n[sel], zi)
        else:
            default = self.cfg.alert_budget.false_alerts_per_series_week
            lower = kernels.wilson_lower(k, n, self._budget_zs(default)[int(burst)])
        level = np.minimum(np.maximum(base * cfg.rate_factor, base + cfg.min_abs_rate), 1.0)
        stat: F64 = np.where(n >= enough, lower / level, 0.0)
        return stat

    def _windows(self) -> tuple[tuple[str, float, bool], ...]:
        """(array prefix, half-life, is the burst window) of each window that is on."""
        cfg = self.cfg
        out: tuple[tuple[str, float, bool], ...] = (("fast", cfg.window_half_life_s, False),)
        if cfg.burst_half_life_s > 0:
            out += (("burst", cfg.burst_half_life_s, True),)
        return out

    def _window_counts(
        self, name: str, half_life: float, slots: npt.NDArray[np.int64], ts: F64, hits: F64
    ) -> tuple[F64, F64]:
        """Learn the rows into window ``name``; its (n, k) after each row."""
        a = self.st.arrays
        n, k = kernels.decayed_counts_update(
            slots,
            ts,
            hits,
            a[f"{name}_n"],
            a[f"{name}_k"],
            a[f"{name}_t"],
            half_life,
            np.zeros(a[f"{name}_n"].size, dtype=np.bool_),
        )
        return n, k

    def _window_at(
        self, name: str, half_life: float, slots: int | npt.NDArray[np.int64], now: float
    ) -> tuple[F64, F64]:
        """Window ``name``'s (n, k) for ``slots`` (one slot: arrays of one), decayed to
        ``now``."""
        a = self.st.arrays
        d = 2.0 ** (-np.maximum(now - a[f"{name}_t"][slots], 0.0) / half_life)
        return np.atleast_1d(a[f"{name}_n"][slots] * d), np.atleast_1d(a[f"{name}_k"][slots] * d)

    def _to_judge(self, slots: npt.NDArray[np.int64], now: float) -> list[int]:
        """The batch's slots that can have a finding: over the alert level now, firing,
        or holding a culprit. Judging every slot one by one cost ~30 us each, most of a
        batch's time when it touches thousands of series."""
        uniq = np.unique(slots)
        base = self._baseline(self.st.arrays["slow_n"][uniq], self.st.arrays["slow_k"][uniq])
        stat = np.zeros(uniq.size)
        for name, half_life, burst in self._windows():
            wn, wk = self._window_at(name, half_life, uniq, now)
            stat = np.maximum(stat, self._statistic(wn, wk, base, uniq, burst=burst))
        # A margin, so the vector arithmetic's last bit never skips a slot _judge
        # (which decides, one slot at a time) would call anomalous.
        keep = stat >= 1.0 - 1e-9
        held = self.firing.firing.union(self.culprits.hosts)
        if held:
            ints = [k for k in held if isinstance(k, int | np.integer)]
            keep |= np.isin(uniq, np.array(ints, dtype=np.int64))
        out: list[int] = uniq[keep].tolist()
        return out

    def update(self, batch: InferenceColumns) -> DetectorOutput:
        n = len(batch)
        scores = np.zeros(n, dtype=np.float64)
        if n == 0:
            return DetectorOutput(scores, [])
        cfg = self.cfg
        ts = clean_ts(batch.ts)
        sids = self.st.ids(batch, ts)
        a = self.st.arrays
        findings: list[Finding] = []
        now = float(ts.max())
        for r, rate in enumerate(RATES):
            slots = sids * len(RATES) + r
            hits = (batch.status == STATUS_CODES[rate]).astype(np.float64)
            # Rates are ratios, so the slow counts need no decay to give the baseline.
            base = self._baseline(a["slow_n"][slots], a["slow_k"][slots])
            stat = np.zeros(n, dtype=np.float64)
            for name, half_life, burst in self._windows():
                wn, wk = self._window_counts(name, half_life, slots, ts, hits)
                stat = np.maximum(stat, self._statistic(wn, wk, base, slots, burst=burst))
            self._freeze(slots, np.maximum(stat, self._batch_statistic(slots, hits)), now)
            kernels.decayed_counts_update(
                slots,
                ts,
                hits,
                a["slow_n"],
                a["slow_k"],
                a["slow_t"],
                cfg.baseline_half_life_s,
                ~np.isnan(a["frozen_since"]),
            )
            scores = np.maximum(scores, squash(stat, 1.0))
            self._tally_hosts(batch, slots, ts, hits > 0, stat)
            for slot in self._to_judge(slots, now):
                culprit = functools.partial(dominant_of, self.fail_hosts.get(slot, {}))
                findings.extend(self._judge(slot, rate, now, culprit))
        self._evict(now)
        return DetectorOutput(scores, findings)

    def _batch_statistic(self, slots: npt.NDArray[np.int64], hits: F64) -> F64:
        """The statistic of this batch's own rows per series, mapped back to the rows.

        A young series' window and baseline hold the same few rows, so a burst that
        arrives in small batches lifts the window only as fast as it lifts the
        baseline, and the window alone never crosses ``learn_gate``: the burst would be
        learned as normal. A batch that is itself hot keeps the baseline frozen.
        """
        a = self.st.arrays
        uniq, inv = np.unique(slots, return_inverse=True)
        n = np.bincount(inv, minlength=uniq.size).astype(np.float64)
        k = np.bincount(inv, weights=hits, minlength=uniq.size).astype(np.float64)
        base = self._baseline(a["slow_n"][uniq], a["slow_k"][uniq])
        out: F64 = self._statistic(n, k, base, uniq)[inv]
        return out

    def _tally_hosts(
        self,
        batch: InferenceColumns,
        slots: npt.NDArray[np.int64],
        ts: F64,
        failed: npt.NDArray[np.bool_],
        stat: F64,
    ) -> None:
        """Count the serving hosts of failures while a series' rate is raised (above
        ``learn_gate``) or alerting, so a slow series gathers enough evidence to say
        whether one host is behind its failures. The counts fade with the window's
        half-life, so they follow the failures when they move; forgotten once calm."""
        hot = stat >= self.cfg.learn_gate
        rows = failed & hot
        if rows.any():
            hosts = labels_of((batch.host[rows],))[0].tolist()
            for slot, host, t in zip(slots[rows].tolist(), hosts, ts[rows].tolist(), strict=True):
                if not host:
                    continue
                tally = self.fail_hosts.setdefault(slot, {})
                last = self.fail_t.get(slot, t)
                if t > last:
                    fade = 2.0 ** (-(t - last) / self.cfg.window_half_life_s)
                    for h in tally:
                        tally[h] *= fade
                self.fail_t[slot] = max(t, last)
                tally[host] = tally.get(host, 0.0) + 1.0
        calm = np.setdiff1d(np.unique(slots), np.unique(slots[hot])).tolist()
        for slot in calm:
            if slot not in self.firing.firing:
                self.fail_hosts.pop(slot, None)
                self.fail_t.pop(slot, None)

    def _freeze(self, slots: npt.NDArray[np.int64], stat: F64, now: float) -> None:
        """Stop the baseline learning series whose statistic is above ``learn_gate``; after
        ``max_freeze_s`` the window's rate becomes the baseline (the new normal)."""
        a = self.st.arrays
        hot = np.unique(slots[stat >= self.cfg.learn_gate])
        cold = np.setdiff1d(np.unique(slots), hot)
        a["frozen_since"][cold] = np.nan
        since = a["frozen_since"][hot]
        a["frozen_since"][hot[np.isnan(since)]] = now
        expired = hot[now - since >= self.cfg.max_freeze_s]
        if expired.size:
            a["slow_n"][expired] = a["fast_n"][expired]
            a["slow_k"][expired] = a["fast_k"][expired]
            a["frozen_since"][expired] = np.nan

    def _judge(
        self, slot: int, rate: str, now: float, culprit: Callable[[], str | None]
    ) -> list[Finding]:
        cfg = self.cfg
        a = self.st.arrays
        base = self._baseline(a["slow_n"][[slot]], a["slow_k"][[slot]])
        stat = -np.inf
        for name, half_life, burst in self._windows():
            wn, wk = self._window_at(name, half_life, slot, now)
            one = np.array([slot], dtype=np.int64)
            w_stat = float(self._statistic(wn, wk, base, one, burst=burst)[0])
            if w_stat > stat:
                # The finding quotes the window that carries the verdict.
                stat, n, k = w_stat, wn, wk
        anomalous = stat >= 1.0
        labels = self.st.labels(slot // len(RATES))
        expected = float(base[0])
        level = min(max(expected * cfg.rate_factor, expected + cfg.min_abs_rate), 1.0)
        # Recovery findings carry the same labels as the episode they end.
        series, ended = self.culprits.relabel(slot, anomalous, labels, culprit)
        out: list[Finding] = []
        if ended is not None:
            # The failures moved to another host (or spread out): a new episode.
            self.firing.firing.discard(slot)
            out.append(self._make(slot, rate, now, ended, False, stat, n, k, expected, level))
        verdict = self.firing.step(slot, anomalous)
        if verdict is not None:
            out.append(self._make(slot, rate, now, series, verdict, stat, n, k, expected, level))
        return out

    def _make(
        self,
        slot: int,
        rate: str,
        now: float,
        series: dict[str, str],
        is_anomalous: bool,
        stat: float,
        n: F64,
        k: F64,
        expected: float,
        level: float,
    ) -> Finding:
        labels = self.st.labels(slot // len(RATES))
        observed = float(k[0] / n[0]) if n[0] > 0 else 0.0
        text = (
            f"{rate} rate {observed:.1%} ({fmt(float(k[0]))} of {fmt(float(n[0]))} "
            f"recent requests) vs baseline {expected:.2%}, alert level {level:.1%}, "
            f"for {labels['model']} {labels['model_version']} on {labels['gateway']}"
        )
        if "host" in series:
            text += f", failures concentrated on host {series['host']}"
        return self.finding(
            f"error_rate.{rate}",
            series,
            now,
            float(squash(stat, 1.0)),
            is_anomalous,
            observed=observed,
            expected=expected,
            upper=level,
            severity="error" if stat >= 2.0 else "warning",
            explanation=text,
        )

    def _evict(self, now: float) -> None:
        gone = self.st.evict(now)
        if gone:
            slots = set(self.st.rows(np.fromiter(gone, dtype=np.int64)).tolist())
            self.firing.forget_series(slots, at=None)
            for key in slots:
                self.culprits.hosts.pop(key, None)
                self.fail_hosts.pop(key, None)
                self.fail_t.pop(key, None)
                self.z_of_slot.pop(key, None)
