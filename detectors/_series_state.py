"""The generic series detector's per-series state: its arrays (``SeriesState`` columns)
and the migrations that bring an older snapshot's state to the current layout (each
registered in ``SeriesDetector.state_migrations``). Every version appended what it added
at the end of the scalars and the tails, so a migration pads with what the new columns
start at."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from detectors._tracking import FiringState
from detectors.base import Migration
from detectors.kernels import robust_layout as k
from detectors.kernels._base import lend_row
from detectors.kernels.nearest import SPAN_SLACK
from detectors.kernels.tail import TAIL_COLUMNS
from detectors.kernels.week_shape import WIDTH as WEEK_WIDTH
from detectors.kernels.weekday import DAY_S, WEEKDAYS
from detectors.registry import Column, SeriesRegistry, SeriesState, grow

F64 = npt.NDArray[np.float64]

# Per-series state arrays up to version 9: scalars, daily profile level and scale,
# weekday offsets, tails (version 10 added "hv", each series' ring of its last values;
# version 11 replaced it by "ring", the row of the ``RingPool`` a series has borrowed).
_ARRAYS = ("st", "pl", "ps", "pw", "tails")
NEAREST_SAMPLES = 2016  # the ring's default length: a week of 5-minute rows


def columns(
    profile_slots: int, scalars: int = k.SERIES_COLUMNS, tails: int = k.TAILS
) -> dict[str, Column]:
    return {
        "st": Column(shape=(scalars,)),
        "pl": Column(shape=(profile_slots,), dtype=np.float32),
        "ps": Column(shape=(profile_slots,), dtype=np.float32),
        "pw": Column(shape=(WEEKDAYS,)),
        "tails": Column(shape=(TAIL_COLUMNS * tails,)),
        "ring": Column(fill=-1, dtype=np.int64),
        "week": Column(fill=-1, dtype=np.int64),
    }


class RowPool:
    """Rows of a per-series array lent to the series that use one, so the others pay
    nothing for it: ``hv`` (the held values, one row per borrower), a stack of free rows
    and, per series, the row it holds (a state column, -1: none). A series borrows in
    the kernel (``lend_row``) and gives its row back when it is evicted. Before each
    batch the detector ``reserve``s a free row for every series that may borrow in it,
    so the kernel never has to grow the pool."""

    def __init__(self, width: int, dtype: type = np.float32) -> None:
        self.hv: npt.NDArray[Any] = np.zeros((0, width), dtype=dtype)
        self.free = np.zeros(0, dtype=np.int64)  # a stack: free[:n_free[0]], top last
        self.n_free = np.zeros(1, dtype=np.int64)

    @property
    def width(self) -> int:
        return int(self.hv.shape[1])

    def reserve(self, wanted: int) -> None:
        """At least ``wanted`` free rows; the pool at least doubles when it grows."""
        short = wanted - int(self.n_free[0])
        if short <= 0:
            return
        old = self.hv.shape[0]
        size = max(2 * old, old + short)
        self.hv = grow(self.hv, size, 0.0)
        # The lowest rows on top of the stack: borrowed first, so the pool stays dense.
        added = np.arange(size - 1, old - 1, -1, dtype=np.int64)
        self.free = np.concatenate([added, self.free[: int(self.n_free[0])]])
        self.n_free[0] = self.free.size

    def reclaim(self, held: npt.NDArray[np.int64]) -> None:
        """After an eviction (whose series' ``held`` row was reset to -1): every row no
        series holds is free again."""
        taken = np.zeros(self.hv.shape[0], dtype=bool)
        taken[held[held >= 0]] = True
        self.free = np.flatnonzero(~taken)[::-1].astype(np.int64)
        self.n_free[0] = self.free.size


class RingPool(RowPool):
    """The rings of the nearest-value statistic, lent to the series that can use one.

    ``N`` rows of a 15-second series span a few hours, where the statistic is not
    measured; a ring per series cost such a series 8 KB for nothing (most scraped
    series are that fast). A series borrows a row (``lend_row``, in the kernel) once its
    interval lets ``N`` rows span the statistic's time."""

    def borrowers(
        self, st: F64, ring: npt.NDArray[np.int64], ids: npt.NDArray[np.int64], ts: F64,
        span_s: float,
    ) -> int:  # fmt: skip
        """How many of the batch's series (``ids``, ``ts``) may borrow a ring in it: they
        hold none and their interval, where known, lets the ring span ``span_s`` (a
        series on its first rows is judged by its first interval in the batch)."""
        if self.width == 0:
            return 0
        # Per batch, on every batch: the usual answer (every series holds a ring, or is
        # too fast for one) comes from two vector passes.
        ids = ids[ring[ids] < 0]
        if ids.size == 0:
            return 0
        dt = st[ids, k.S_DT]
        ids = ids[(dt <= 0.0) | (dt * self.width >= SPAN_SLACK * span_s)]
        if ids.size == 0:
            return 0
        sids = np.unique(ids)
        dt = st[sids, k.S_DT].copy()
        fresh = dt <= 0.0
        if fresh.any():
            dt[fresh] = _first_intervals(st, ids, ts, sids[fresh])
        return int(np.count_nonzero(dt * self.width >= SPAN_SLACK * span_s))


class WeekPool(RowPool):
    """The weekly profiles (``detectors.kernels.week_shape``), lent to the series whose
    daily profile has come into use: a weekly shape only matters to a seasonal series,
    and most fast scraped series never are (their plain level follows a daily cycle),
    so they do not pay its 1,344 bytes."""

    def __init__(self) -> None:
        super().__init__(WEEK_WIDTH)

    def borrowers(
        self, st: F64, week: npt.NDArray[np.int64], ids: npt.NDArray[np.int64], ts: F64
    ) -> int:
        """How many of the batch's series (``ids``, ``ts``) may borrow in it: those that
        hold none and are seasonal, or whose rows in it span a day (a replay hands a
        detector weeks of a series at once: it may turn seasonal within them). A live
        batch spans seconds, so a series that turns seasonal in one borrows in the next."""
        held = week[ids] < 0
        ids, ts = ids[held], ts[held]
        if ids.size == 0:
            return 0
        if float(ts.max() - ts.min()) < DAY_S:
            # Most series of a live batch are not seasonal: only the others are sorted.
            seasonal = ids[st[ids, k.S_SEAS] > 0.5]
            return int(np.unique(seasonal).size) if seasonal.size else 0
        order = np.argsort(ids, kind="stable")
        sids, sts = ids[order], ts[order]
        starts = np.r_[0, np.flatnonzero(sids[1:] != sids[:-1]) + 1]
        span = np.maximum.reduceat(sts, starts) - np.minimum.reduceat(sts, starts)
        wants = (st[sids[starts], k.S_SEAS] > 0.5) | (span >= DAY_S)
        return int(np.count_nonzero(wants))


def restart_week(series: SeriesState) -> WeekPool:
    """The weekly profiles of series restored without them: none held, out of use, and
    an empty pool (returned) to borrow from when each is next seasonal."""
    st = series.arrays["st"]
    st[:, k.S_WK_RES : k.S_WK_T0 + 1] = 0.0
    series.arrays["week"][:] = -1
    return WeekPool()


def _first_intervals(
    st: F64, ids: npt.NDArray[np.int64], ts: F64, sids: npt.NDArray[np.int64]
) -> F64:
    """Per series of ``sids`` (sorted): the first positive interval between its rows in
    the batch, counting from its last row before it (0 where there is none)."""
    rows = np.flatnonzero(np.isin(ids, sids))
    rows = rows[np.argsort(ids[rows], kind="stable")]
    s, t = ids[rows], ts[rows]
    first = np.r_[True, s[1:] != s[:-1]]
    seen = st[s, k.S_N] >= 1.0
    prev = np.r_[np.nan, t[:-1]]
    prev[first] = np.where(seen[first], st[s[first], k.S_LAST_T], np.nan)
    gap = t - prev
    ok = gap > 0.0  # NaN (nothing before) is not
    who, at = np.unique(s[ok], return_index=True)
    out = np.zeros(sids.size)
    out[np.searchsorted(sids, who)] = gap[ok][at]
    return out


# Version 3's layout: 30 scalars and six tails (version 4 added the residual envelope
# and its novelty tail at the end of each; version 5 one scalar, the window tail's run;
# version 6 three, the level before the last level shift and when it was left; version
# 7 four, the last value, the series' step, whether it moves in steps and the lowest
# value seen; version 8 three, the run of repeats, the share of rows that repeat and
# the run as last learned, and the tail of runs of repeats; version 9 changed what one
# column means, not the layout; version 10 two, the ring's count and the nearest-value
# tail's running run, that tail, and the ring itself; version 11 lent the ring from a
# pool; version 12 one scalar, the highest value seen; version 13 four, the opening
# row of the episode in progress; version 14 four, the weekly profile's residual
# averages, whether it is in use and when it started, and the weekly profile itself).
_V3_SCALARS, _V3_TAILS = 30, 6
_V4_SCALARS, _V5_SCALARS, _V6_SCALARS, _V7_SCALARS = 33, 34, 37, 41
_V8_SCALARS, _V8_TAILS = 44, 8
_V10_SCALARS, _V12_SCALARS, _V13_SCALARS = 46, 47, 51


def _nearest(payload: dict[str, Any]) -> int:
    """The ring length the restored detector will have (its params, or the default)."""
    return int(payload.get("params", {}).get("nearest_samples", NEAREST_SAMPLES))


def _from_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """State version 2 kept the arrays column-per-series beside its own registry."""
    old = payload["state"]
    slots = int(np.asarray(old["pl"]).shape[0])
    cols = columns(slots, _V3_SCALARS, _V3_TAILS)
    series = SeriesState(("series",), cols, ttl_s=float(old["registry"]["ttl_s"]))
    registry = SeriesRegistry(("series",), ttl_s=1.0)
    registry.set_state(old["registry"])
    series.adopt(registry, {n: np.ascontiguousarray(np.asarray(old[n]).T) for n in _ARRAYS})
    firing = FiringState()
    firing.firing = set(old["firing"])
    return {**payload, "state": {"series": series, "firing": firing}}


def _widened(
    old: SeriesState, scalars: int, tails: int = _V8_TAILS
) -> tuple[dict[str, Column], dict[str, F64]]:
    """An older layout's columns and arrays, each array padded with zeros to the columns
    of a layout with ``scalars`` scalars and ``tails`` tails (what later versions appended
    starts at 0), and the pool row each series holds where the layout lends rings
    (version 11 on); an array the older layout lacked starts fresh (a ring row: none)."""
    cols = columns(int(old.columns["pl"].shape[0]), scalars, tails)
    arrays = {
        name: np.pad(have, ((0, 0), (0, cols[name].shape[0] - have.shape[1])))
        for name, have in old.arrays.items()
        if name in _ARRAYS
    }
    if "ring" in old.arrays:
        arrays["ring"] = old.arrays["ring"]
    return cols, arrays


def _adopted(
    payload: dict[str, Any], old: SeriesState, cols: dict[str, Column], arrays: dict[str, F64]
) -> dict[str, Any]:
    series = SeriesState(("series",), cols, ttl_s=old.registry.ttl_s)
    series.adopt(old.registry, arrays)
    return {**payload, "state": {**payload["state"], "series": series}}


def _from_v3(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 4 appended the residual envelope and the novelty tail. The tail starts
    fresh; the envelope starts at 3 robust scales either side of the baseline (what a
    settled series' residuals span), not at 0, where every next row would be novel."""
    old: SeriesState = payload["state"]["series"]
    cols, arrays = _widened(old, _V4_SCALARS)
    reach = 3.0 * 1.2533 * arrays["st"][:, k.S_SC]  # sd per mean absolute deviation
    arrays["st"][:, k.S_HI], arrays["st"][:, k.S_LO] = reach, -reach
    return _adopted(payload, old, cols, arrays)


def _from_v4(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 5 appended the plain window tail's running-run peak (0: not in a run). That
    tail keeps what it learned as a row tail; its rate falls to a run rate within a few
    thousand rows (the rate memory), and it is stricter than a new one meanwhile."""
    old: SeriesState = payload["state"]["series"]
    return _adopted(payload, old, *_widened(old, _V5_SCALARS))


def _from_v5(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 6 appended the level before the last level shift (both baselines) and its
    time; at 0 no earlier level is known, so the next return to one pages as before."""
    old: SeriesState = payload["state"]["series"]
    return _adopted(payload, old, *_widened(old, _V6_SCALARS))


def _from_v6(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 7 appended the last value, the series' step and the share of changes that
    are whole steps (for the continuity correction), and the lowest value seen (a bound
    below zero is not stated on a series never below it). The last and lowest values
    were not kept: NaN, so the step is learned from the second row after the restore on,
    no correction is made until about a hundred changes have shown the series moves in
    steps, and the lowest value is the lowest seen since the restore."""
    old: SeriesState = payload["state"]["series"]
    cols, arrays = _widened(old, _V7_SCALARS)
    arrays["st"][:, [k.S_PREV, k.S_LOWEST]] = np.nan
    return _adopted(payload, old, cols, arrays)


def _from_v7(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 8 appended the run of repeats (0: none running), the share of rows that
    repeat and the tail of runs of repeats, all fresh: the stuck-value statistic is not
    scored until its tail has learned ``warmup_samples`` rows after the restore."""
    old: SeriesState = payload["state"]["series"]
    return _adopted(payload, old, *_widened(old, _V8_SCALARS))


def _from_v8(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 9 counts an episode's rows toward a rebase from the last stuck stretch, in
    the column that held the episode's start time (which nothing read). An episode open
    at the snapshot had no stuck stretch counted, so all its rows count."""
    old: SeriesState = payload["state"]["series"]
    cols, arrays = _widened(old, _V8_SCALARS)
    arrays["st"][:, k.S_EP_MOVED] = arrays["st"][:, k.S_EP_LEN]
    return _adopted(payload, old, cols, arrays)


def _from_v9(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 10 appended the ring of the last values, their count and the tail of the
    distance to the nearest of them, all fresh: that statistic is not scored until its
    tail has learned half of ``warmup_samples`` rows after the restore. (Brought straight
    to version 11's layout: no series holds a ring, which ``_from_v10`` passes on.)"""
    old: SeriesState = payload["state"]["series"]
    return _adopted(payload, old, *_widened(old, _V10_SCALARS, k.TAILS))


def _from_v10(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 11 lends rings from a pool instead of keeping one per series. Each
    series that had written to its ring and whose interval lets it span the statistic's
    time borrows a row holding the same values, in the same places (the count is
    unchanged). A faster series wrote its ring for nothing (the statistic was never
    measured there): it holds none, and its count starts again at 0."""
    old: SeriesState = payload["state"]["series"]
    pool = RingPool(_nearest(payload))
    if "hv" not in old.arrays:  # from _from_v9: nothing written yet
        return {**payload, "state": {**payload["state"], "rings": pool}}
    cols, arrays = _widened(old, _V10_SCALARS, k.TAILS)
    st = arrays["st"]
    span = float(payload.get("params", {}).get("nearest_span_s", k.WEEK_S))
    spans = st[:, k.S_DT] * pool.width >= SPAN_SLACK * span
    wrote = np.flatnonzero((st[:, k.S_NN_N] > 0.0) & spans)
    st[~spans, k.S_NN_N] = 0.0
    pool.reserve(wrote.size)
    ring = arrays["ring"] = np.full(st.shape[0], -1, dtype=np.int64)
    for sid in wrote.tolist():  # lent as the kernel lends
        lend_row(ring, pool.free, pool.n_free, sid)
    pool.hv[ring[wrote]] = old.arrays["hv"][wrote]
    adopted = _adopted(payload, old, cols, arrays)
    return {**adopted, "state": {**adopted["state"], "rings": pool}}


def _from_v11(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 12 appended the highest value seen, for the young test. It was not kept,
    and a range kept from the restore on would be too narrow for that test (a normal
    peak would land beyond it), so it stays NaN and the test stays off for the series
    restored: a young one is scored again once its warm-up ends."""
    old: SeriesState = payload["state"]["series"]
    cols, arrays = _widened(old, _V12_SCALARS, k.TAILS)
    arrays["st"][:, k.S_HIGHEST] = np.nan
    return _adopted(payload, old, cols, arrays)


def _from_v12(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 13 appended the opening row of the episode in progress (its point
    statistics, residual and novelty), which a short episode teaches the tails when it
    ends. None is kept (0): an episode open at the snapshot teaches nothing."""
    old: SeriesState = payload["state"]["series"]
    return _adopted(payload, old, *_widened(old, _V13_SCALARS, k.TAILS))


def _from_v13(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 14 appended the weekly profile's residual averages, in-use flag and start,
    and the row of the weekly-profile pool a series holds. None is held: a series
    borrows one when it is next seasonal, which starts as its daily model and may come
    into use two weeks later; everything else scores as before."""
    old: SeriesState = payload["state"]["series"]
    adopted = _adopted(payload, old, *_widened(old, k.SERIES_COLUMNS, k.TAILS))
    weeks = restart_week(adopted["state"]["series"])
    return {**adopted, "state": {**adopted["state"], "weeks": weeks}}


def _from_v14(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 15 keeps the daily profile (a level and a scale per slot) in float32, as
    the weekly profile is: 384 bytes a series less. Its values are cast; the series
    score as before within float32 rounding (on nab_dev the same alerts at the same
    rows, every score within 0.0002)."""
    old: SeriesState = payload["state"]["series"]
    cols = columns(int(old.columns["pl"].shape[0]))
    return _adopted(payload, old, cols, dict(old.arrays))


MIGRATIONS: dict[int, Migration] = {
    2: _from_v2,
    3: _from_v3,
    4: _from_v4,
    5: _from_v5,
    6: _from_v6,
    7: _from_v7,
    8: _from_v8,
    9: _from_v9,
    10: _from_v10,
    11: _from_v11,
    12: _from_v12,
    13: _from_v13,
    14: _from_v14,
}
