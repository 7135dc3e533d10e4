"""Windowed-quantile-vs-baseline state for one family of series (not a detector).

Per (series, metric) slot: a decayed log-bucket sketch gives the recent window's high
quantile, and a slow event-time EWMA of that quantile's log is the baseline. The
baseline is gated: while the window quantile is above ``threshold_z`` it is not
learned (it freezes), and after ``max_freeze_s`` of continuous freeze the current
level is accepted as the new normal (the baseline restarts from it). Slots are
``sid * n_metrics + metric`` so every kernel sees flat 1-d state.

Four guards keep ordinary life from paging:

* tail support: a window's quantile is scored only when the window holds enough rows
  that ``min_tail_count`` of them are expected above it (300 for a p99 at 3); in a
  thinner window the "p99" is its maximum, a single slow request;

* warm-up: a slot scores 0 (and learns every row) until its baseline has ``warmup_s``
  of event time behind it; a baseline fitted to a minute of data is mostly noise;
* common mode: load moves every series' latency together (queueing and batch size grow
  with traffic), so a quantile (``common_quantile``, the median by default) of the
  log excess over baseline across the family's recently active, warm slots (when at
  least ``min_peers`` of them) is taken off each slot's value before it is scored or
  learned. Load lifts every series; an incident that hits a minority of them (a
  gateway, a version, a host) barely moves the median, and series whose baseline is
  frozen (an incident of their own) are left out of it. In a small family where one
  incident hits half the series, a lower ``common_quantile`` keeps it visible, at the
  price of excusing less of a load surge. Only slowdowns are excused, never speed-ups;
* effect size: a z above threshold also needs the quantile at least
  ``min_log_effect`` above its baseline, so a very steady series does not page on a
  statistically clear but harmless change;
* still produced (``confirm_s``, ``confirm_segments``): a decayed window remembers its
  slow rows for several half-lives, so one short burst of slow requests (a host pushed
  to saturation for a few seconds by a load spike, where queueing grows as
  ``rho / (1 - rho)``; a GC pause) holds the window's p99 high for minutes after the
  slow requests stopped. A slot over its threshold becomes anomalous only once the
  rows that arrived *after* it crossed show the slowdown too: in each of
  ``confirm_segments`` consecutive full segments of ``confirm_s`` (aligned to event
  time), more of the fresh rows lie above the baseline's quantile than chance allows
  (twice the quantile's tail share, 3 Poisson sd over it, and two rows). A window
  quantile that is only decaying has its slow requests in the past; a fault keeps
  producing them. Once anomalous, a slot stays so while its z is over the threshold.

Thresholds: ``threshold_z`` (the detector's, from its default alert budget; also the
learning gate) unless a slot's budget differs (an override: ``thr`` by slot).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors import kernels
from detectors.registry import Column, SeriesRegistry, SeriesState

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
    warmup_s: float = 0.0
    common_mode: bool = False
    min_peers: int = 3
    common_quantile: float = 0.5
    min_log_effect: float = 0.0
    min_tail_count: float = 0.0
    confirm_s: float = 0.0
    confirm_segments: int = 0


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
    threshold: float  # the slot's alert threshold (z)
    hot: bool  # anomalous now: over the threshold and confirmed


def _columns(n_buckets: int) -> dict[str, Column]:
    """Per slot: the decayed sketch (bucket counts, offset, total, reference time), the
    baseline EWMA (mean, var, weight, last time, freeze start), the last verdict, when
    the slot first had a quantile, and its latest excess over baseline (common mode)."""
    return {
        "counts": Column(0.0, np.float32, (n_buckets,)),
        "offset": Column(0, np.int64),
        "total": Column(0.0),
        "ref_t": Column(0.0),
        "mean": Column(0.0),
        "var": Column(0.0),
        "weight": Column(0.0),
        "last_t": Column(-np.inf),
        "frozen_since": Column(np.nan),
        "last_z": Column(0.0),
        "last_q": Column(np.nan),
        "born": Column(np.nan),
        "excess": Column(np.nan),
        "excess_t": Column(-np.inf),
        **CONFIRM_COLUMNS,
    }


# Per slot (state version 3): the confirmation of a slowdown (0 idle, 1 over its
# threshold in a partial segment, 2 + n with n full segments passed, -1 anomalous) and
# the fresh rows, and fresh rows above the alert level, of the segment in progress.
CONFIRM_COLUMNS = {
    "conf": Column(0, np.int8),
    "seg_n": Column(0.0, np.float32),
    "seg_k": Column(0.0, np.float32),
}
IDLE, PARTIAL, COUNTING, HOT = 0, 1, 2, -1


# Scratch of the last batch, not learned state (left out of bytes_per_key).
_SCRATCH = ("last_z", "last_q", "excess", "excess_t")


class QuantileBaseline:
    def __init__(
        self, labels: tuple[str, ...], n_metrics: int, params: QuantileParams, ttl_s: float
    ) -> None:
        self.p = params
        # A window's high quantile counts only with ``min_tail_count`` rows expected
        # above it: with fewer, the "p99" is the window's maximum, and one slow request
        # holds it up for a whole window half-life or more.
        self.min_count = max(params.min_window_count, params.min_tail_count / (1 - params.quantile))
        self.n_metrics = n_metrics
        self.st = SeriesState(labels, _columns(params.n_buckets), ttl_s=ttl_s, slots=n_metrics)
        self._fresh_confirmation()

    def _fresh_confirmation(self) -> None:
        # Thresholds of slots whose budget differs from the default (an override), and
        # per metric the confirmation segment in progress (segments are aligned to
        # multiples of confirm_s of event time, the same for every slot).
        self.thr: dict[int, float] = {}
        self.seg_id = [-1] * self.n_metrics

    @property
    def registry(self) -> SeriesRegistry:
        return self.st.registry

    def upgrade_v1(self) -> None:
        """A baseline unpickled from state version 1 (one attribute per array)."""
        old = dict(self.__dict__)
        self.__dict__ = {k: old[k] for k in ("p", "min_count", "n_metrics")}
        self.st = SeriesState(
            old["registry"].label_names, _columns(self.p.n_buckets), ttl_s=1.0, slots=self.n_metrics
        )
        self.st.adopt(old["registry"], {k: old[k] for k in self.st.columns if k in old})
        self._fresh_confirmation()

    def upgrade_v2(self, params: QuantileParams) -> None:
        """A baseline unpickled from state version 2: this release's parameters (the
        pickled ones lack the confirmation fields) and fresh confirmation columns."""
        self.p = params
        self.st.columns = _columns(params.n_buckets)
        self.st.load(self.st.arrays)
        self._fresh_confirmation()

    def bytes_per_key(self) -> int:
        """Learned state per series key (all metrics): sketch plus baseline arrays."""
        return self.st.bytes_per_series([c for c in self.st.columns if c not in _SCRATCH])

    def ids_for_batch(self, batch: Any, ts: F64, rows: npt.NDArray[np.intp] | None) -> I64:
        """Series ids of the batch's rows (``rows``: only those), from its label codes."""
        return self.st.ids(batch, ts, rows)

    def update(self, sids: I64, metric: int, ts: F64, x: F64) -> F64:
        """Learn one metric's values for rows of series ``sids``; returns z per row."""
        p = self.p
        slots = sids * self.n_metrics + metric
        q, eff = kernels.sketch_add(
            slots,
            ts,
            x,
            self.st.counts,
            self.st.offset,
            self.st.total,
            self.st.ref_t,
            p.gamma,
            p.min_value,
            p.window_half_life_s,
            p.quantile,
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(eff >= self.min_count, np.log(q), np.nan)
        finite = np.isfinite(y)
        fresh = finite & np.isnan(self.st.born[slots])
        if fresh.any():
            np.fmin.at(self.st.born, slots[fresh], ts[fresh])
        # Age at the batch's start: a slot is in or out of warm-up for the whole batch.
        warm = (ts.min() - self.st.born[slots]) >= p.warmup_s
        shift = np.zeros(len(slots), dtype=np.float64)
        if p.common_mode:
            shift = self._common_mode(slots, ts, y, warm, metric)
            y = y - shift
        mean_before = self.st.mean[slots]
        thr = self.thresholds(slots)
        z = np.zeros(len(slots), dtype=np.float64)
        for part, gate in ((warm, p.threshold_z), (~warm, np.inf)):
            if part.any():
                z[part] = self._ewma(slots[part], ts[part], y[part], gate)
        z[~warm & finite] = 0.0
        z[~finite] = np.nan
        if p.min_log_effect > 0:
            small = (y - mean_before) < p.min_log_effect
            z = np.where(small & (z > 0), np.minimum(z, thr * 0.99), z)
        ok = np.isfinite(z)
        if ok.any():
            # The last scored row of each slot is the slot's current verdict.
            rev_slots = slots[ok][::-1]
            _, first = np.unique(rev_slots, return_index=True)
            self.st.last_z[rev_slots[first]] = z[ok][::-1][first]
            self.st.last_q[rev_slots[first]] = q[ok][::-1][first]
        self._confirm(slots, ts, thr, metric, x, -(shift + mean_before))
        return z

    def thresholds(self, slots: I64) -> F64:
        """Each slot's alert threshold (z): ``threshold_z`` unless its budget differs."""
        thr = np.full(slots.shape, self.p.threshold_z)
        if self.thr:
            flat = thr.reshape(-1)  # a view: slots may be 2-d (series x metric)
            for i, s in enumerate(slots.reshape(-1).tolist()):
                flat[i] = self.thr.get(s, self.p.threshold_z)
        return thr

    def set_thresholds(self, sids: I64, metric: int, z_of: Callable[[int], float]) -> None:
        """Record the threshold of slots of series ``sids`` not seen yet (``z_of(sid)``);
        only called where some series may differ from the default (budget overrides)."""
        for sid in np.unique(sids).tolist():
            slot = sid * self.n_metrics + metric
            if slot not in self.thr:
                self.thr[slot] = z_of(sid)

    def _confirm(
        self,
        slots: I64,
        ts: F64,
        thr: F64,
        metric: int,
        x: F64,
        offset: F64,
    ) -> None:
        """Advance each slot's confirmation by this batch (see the module notes). A row
        is above the baseline quantile when ``log(x) + offset > 0`` (``offset``: minus the
        common shift and the baseline); rows are looked at only for slots being confirmed."""
        p, st = self.p, self.st
        over = st.last_z[slots] >= thr  # per row, the slot's verdict after the batch
        if p.confirm_segments <= 0:
            st.conf[slots] = np.where(over, HOT, IDLE)
            return
        seg = int(np.floor(float(ts.max()) / p.confirm_s))
        if seg > self.seg_id[metric]:
            self._close_segment(metric)
            self.seg_id[metric] = seg
        counting = st.conf[slots] >= COUNTING
        if counting.any():
            rows = slots[counting]
            with np.errstate(invalid="ignore", divide="ignore"):
                above = np.log(np.maximum(x[counting], p.min_value)) + offset[counting] > 0
            size = st.seg_n.shape[0]
            st.seg_n[:] += np.bincount(rows, minlength=size).astype(np.float32)
            st.seg_k[:] += np.bincount(rows[above], minlength=size).astype(np.float32)
        calm = slots[~over]
        st.conf[calm], st.seg_n[calm], st.seg_k[calm] = IDLE, 0.0, 0.0
        st.conf[slots[over & (st.conf[slots] == IDLE)]] = PARTIAL

    def _close_segment(self, metric: int) -> None:
        """End the segment in progress for every confirming slot of ``metric``: a full
        segment passes when at least half the quantile's tail share of its rows (and one
        row) were above the alert level; enough passes in a row make the slot anomalous,
        a failed one starts the count again."""
        p, st = self.p, self.st
        family = np.arange(metric, st.conf.shape[0], self.n_metrics)
        live = family[st.conf[family] >= PARTIAL]
        if live.size == 0:
            return
        n, k = st.seg_n[live].astype(np.float64), st.seg_k[live].astype(np.float64)
        # Rows above the baseline's quantile: (1 - quantile) of them when nothing changed.
        # A pass needs twice that and 3 Poisson sd more (and two rows), so a calm segment
        # passes with a chance of about 1 %, two in a row about 1e-4.
        e = (1.0 - p.quantile) * n
        need = np.maximum(np.maximum(2.0 * e, e + 3.0 * np.sqrt(e)), 2.0)
        passed = (k >= need) & (st.conf[live] >= COUNTING)
        conf = np.where(passed, st.conf[live] + 1, COUNTING)
        st.conf[live] = np.where(conf >= COUNTING + p.confirm_segments, HOT, conf)
        st.seg_n[live], st.seg_k[live] = 0.0, 0.0

    def _ewma(self, slots: I64, ts: F64, y: F64, gate_hi: float) -> F64:
        p = self.p
        z: F64 = kernels.ewma_update(
            slots,
            ts,
            y,
            self.st.mean,
            self.st.var,
            self.st.weight,
            self.st.last_t,
            self.st.frozen_since,
            p.baseline_half_life_s,
            p.min_baseline_weight,
            p.min_log_spread**2,
            -np.inf,
            gate_hi,
            p.max_freeze_s,
        )
        return z

    def _common_mode(self, slots: I64, ts: F64, y: F64, warm: npt.NDArray[np.bool_], m: int) -> F64:
        """Per row, the family's common excess over baseline (>= 0) to take off ``y``."""
        p = self.p
        ok = np.isfinite(y) & warm & (self.st.weight[slots] >= p.min_baseline_weight)
        if ok.any():
            # Each slot's latest excess in this batch, against its baseline before the batch.
            rev = slots[ok][::-1]
            _, first = np.unique(rev, return_index=True)
            last = rev[first]
            self.st.excess[last] = (y[ok][::-1] - self.st.mean[slots[ok]][::-1])[first]
            self.st.excess_t[last] = ts[ok][::-1][first]
        family = np.arange(m, self.st.excess.shape[0], self.n_metrics)
        now = float(ts.max())
        recent = family[
            np.isfinite(self.st.excess[family])
            & (self.st.excess_t[family] >= now - 2.0 * p.window_half_life_s)
        ]
        if recent.size < p.min_peers:
            return np.zeros(len(slots), dtype=np.float64)
        # Series with an incident of their own (baseline frozen) say nothing about load.
        calm = recent[np.isnan(self.st.frozen_since[recent])]
        if calm.size >= p.min_peers:
            recent = calm
        shift = max(float(np.quantile(self.st.excess[recent], p.common_quantile)), 0.0)
        return np.full(len(slots), shift, dtype=np.float64)

    def view(self, sid: int, metric: int) -> SlotView:
        s = sid * self.n_metrics + metric
        sd = math.sqrt(max(float(self.st.var[s]), self.p.min_log_spread**2))
        mu = float(self.st.mean[s])
        thr = float(self.thresholds(np.array([s]))[0])
        return SlotView(
            z=float(self.st.last_z[s]),
            observed=float(self.st.last_q[s]),
            expected=math.exp(mu),
            spread=math.exp(mu) * (math.exp(sd) - 1.0),
            lower=math.exp(mu - thr * sd),
            upper=math.exp(mu + thr * sd),
            frozen_since=float(self.st.frozen_since[s]),
            threshold=thr,
            hot=bool(self.st.conf[s] == HOT),
        )

    def evict(self, now: float) -> set[int]:
        gone = self.st.evict(now)
        if gone and self.thr:
            for slot in [s for s in self.thr if s // self.n_metrics in gone]:
                del self.thr[slot]
        return gone
