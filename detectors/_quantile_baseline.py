"""Windowed-quantile-vs-baseline state for one family of series (not a detector).

Per (series, metric) slot: a decayed log-bucket sketch gives the recent window's high
quantile, and a slow event-time EWMA of that quantile's log is the baseline. The
baseline is gated: while the window quantile is above ``threshold_z`` it is not
learned (it freezes), and after ``max_freeze_s`` of continuous freeze the current
level is accepted as the new normal (the baseline restarts from it). Slots are
``sid * n_metrics + metric`` so every kernel sees flat 1-d state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors import kernels
from detectors.registry import SeriesRegistry, grow

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class QuantileParams:
    quantile: float
    window_half_life_s: float
    baseline_half_life_s: float
    threshold_z: float
    min_log_spread: float
    min_window_count: float
    min_baseline_weight: float
    max_freeze_s: float
    gamma: float
    n_buckets: int
    min_value: float = 1e-3


@dataclass(frozen=True, slots=True)
class SlotView:
    """One slot's current numbers, for findings."""

    z: float
    observed: float
    expected: float
    spread: float  # +/- one baseline standard deviation, in the metric's unit
    lower: float
    upper: float
    frozen_since: float


class QuantileBaseline:
    def __init__(
        self, labels: tuple[str, ...], n_metrics: int, params: QuantileParams, ttl_s: float
    ) -> None:
        self.p = params
        self.n_metrics = n_metrics
        self.registry = SeriesRegistry(labels, ttl_s=ttl_s, initial_capacity=8)
        cap = self.registry.capacity * n_metrics
        self.counts = np.zeros((cap, params.n_buckets), dtype=np.float32)
        self.offset = np.zeros(cap, dtype=np.int64)
        self.total = np.zeros(cap, dtype=np.float64)
        self.ref_t = np.zeros(cap, dtype=np.float64)
        self.mean = np.zeros(cap, dtype=np.float64)
        self.var = np.zeros(cap, dtype=np.float64)
        self.weight = np.zeros(cap, dtype=np.float64)
        self.last_t = np.full(cap, -np.inf, dtype=np.float64)
        self.frozen_since = np.full(cap, np.nan, dtype=np.float64)
        self.last_z = np.zeros(cap, dtype=np.float64)
        self.last_q = np.full(cap, np.nan, dtype=np.float64)

    _FILLS: tuple[tuple[str, Any], ...] = (
        ("counts", 0.0),
        ("offset", 0),
        ("total", 0.0),
        ("ref_t", 0.0),
        ("mean", 0.0),
        ("var", 0.0),
        ("weight", 0.0),
        ("last_t", -np.inf),
        ("frozen_since", np.nan),
        ("last_z", 0.0),
        ("last_q", np.nan),
    )

    def bytes_per_key(self) -> int:
        """Learned state per series key (all metrics): sketch plus baseline arrays."""
        per_slot = sum(
            getattr(self, name)[0].nbytes
            for name, _ in self._FILLS
            if name not in ("last_z", "last_q")
        )
        return int(per_slot * self.n_metrics)

    def _ensure_capacity(self) -> None:
        cap = self.registry.capacity * self.n_metrics
        if self.total.shape[0] < cap:
            for name, fill in self._FILLS:
                setattr(self, name, grow(getattr(self, name), cap, fill))

    def ids(self, columns: tuple[npt.NDArray[Any], ...], ts: F64) -> I64:
        sids = self.registry.ids_for(columns, ts)
        self._ensure_capacity()
        return sids

    def update(self, sids: I64, metric: int, ts: F64, x: F64) -> F64:
        """Learn one metric's values for rows of series ``sids``; returns z per row."""
        p = self.p
        slots = sids * self.n_metrics + metric
        q, eff = kernels.sketch_add(
            slots,
            ts,
            x,
            self.counts,
            self.offset,
            self.total,
            self.ref_t,
            p.gamma,
            p.min_value,
            p.window_half_life_s,
            p.quantile,
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(eff >= p.min_window_count, np.log(q), np.nan)
        z: F64 = kernels.ewma_update(
            slots,
            ts,
            y,
            self.mean,
            self.var,
            self.weight,
            self.last_t,
            self.frozen_since,
            p.baseline_half_life_s,
            p.min_baseline_weight,
            p.min_log_spread**2,
            -np.inf,
            p.threshold_z,
            p.max_freeze_s,
        )
        ok = np.isfinite(z)
        if ok.any():
            # The last scored row of each slot is the slot's current verdict.
            rev_slots = slots[ok][::-1]
            _, first = np.unique(rev_slots, return_index=True)
            self.last_z[rev_slots[first]] = z[ok][::-1][first]
            self.last_q[rev_slots[first]] = q[ok][::-1][first]
        return z

    def view(self, sid: int, metric: int) -> SlotView:
        s = sid * self.n_metrics + metric
        sd = math.sqrt(max(float(self.var[s]), self.p.min_log_spread**2))
        mu = float(self.mean[s])
        thr = self.p.threshold_z
        return SlotView(
            z=float(self.last_z[s]),
            observed=float(self.last_q[s]),
            expected=math.exp(mu),
            spread=math.exp(mu) * (math.exp(sd) - 1.0),
            lower=math.exp(mu - thr * sd),
            upper=math.exp(mu + thr * sd),
            frozen_since=float(self.frozen_since[s]),
        )

    def evict(self, now: float) -> set[int]:
        freed = self.registry.evict_idle(now)
        if freed.size:
            slots = (freed[:, None] * self.n_metrics + np.arange(self.n_metrics)).ravel()
            for name, fill in self._FILLS:
                getattr(self, name)[slots] = fill
        return set(freed.tolist())
