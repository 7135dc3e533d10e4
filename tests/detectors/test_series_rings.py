"""The series detector's ring pool (``detectors._series_state.RingPool``): a ring of last
values is lent only to the series whose rows can span the nearest-value statistic's time,
at the row it would have started as a ring of its own, and given back at eviction; a
version-10 snapshot (a ring per series) restores into the pool."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from detectors._series_state import RingPool, restart_week
from detectors._series_state import columns as series_columns
from detectors.kernels import robust_layout as k
from detectors.kernels.tail import T_N, TAIL_COLUMNS
from detectors.registry import Column, SeriesState
from detectors.series import SeriesDetector
from schemas.columns import MetricColumns, series_key
from tests.detectors.test_series import T0, _feed, restores_alike


def _many(t: np.ndarray, v: np.ndarray, names: list[str]) -> MetricColumns:
    """One batch of several series: row i belongs to ``names[i]``."""
    n = t.size
    obj, key, labels = (np.empty(n, dtype=object) for _ in range(3))
    obj[:] = names
    key[:] = [series_key(m, {"env": "prod"}) for m in names]
    labels[:] = [{"env": "prod"}] * n
    return MetricColumns(ts=t, name=obj, series=key, labels=labels, value=v)


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(100.0, 5.0, n)


def test_a_fast_series_borrows_no_ring_and_costs_no_ring_bytes() -> None:
    # 15-second rows: 2,016 of them are 8.4 hours, where the statistic is not measured.
    det = SeriesDetector()
    _feed(det, T0 + 15.0 * np.arange(3000), _noise(3000), step=256)
    assert det.series.ring[0] == -1 and det.rings.hv.shape[0] == 0
    assert det.bytes_per_series == SeriesDetector().bytes_per_series  # the columns alone
    slow = SeriesDetector()
    _feed(slow, T0 + 300.0 * np.arange(3000), _noise(3000), step=256)
    assert slow.series.ring[0] == 0
    assert slow.bytes_per_series - det.bytes_per_series == 4 * 2016


def test_turned_off_no_series_borrows() -> None:
    det = SeriesDetector(nearest_samples=0)
    _feed(det, T0 + 300.0 * np.arange(600), _noise(600), step=64)
    assert det.series.ring[0] == -1 and det.rings.hv.size == 0


def test_a_ring_starts_at_the_second_row_in_batches_of_any_size() -> None:
    # The first row only starts the series; from the second on every row joins the ring
    # (the count), whether the rows come one per batch (the live worker) or many.
    t, v = T0 + 300.0 * np.arange(700), _noise(700)
    for step in (1, 2, 256):
        det = SeriesDetector()
        _feed(det, t, v, step=step)
        assert det.series.arrays["st"][0, k.S_NN_N] == 699
        np.testing.assert_array_equal(det.rings.hv[0, :699], v[1:].astype(np.float32))


def test_many_new_fast_series_reserve_no_rings() -> None:
    # A first batch of 2,000 new 15-second series (two rows each) reserves nothing; as
    # many 5-minute ones reserve one ring each.
    names = [f"m{i}" for i in range(2000)] * 2
    t = np.r_[np.full(2000, T0), np.full(2000, T0 + 15.0)]
    fast = SeriesDetector()
    fast.update(_many(t, _noise(4000), names))
    assert fast.rings.hv.shape[0] == 0 and len(fast.series) == 2000
    slow = SeriesDetector()
    slow.update(_many(np.r_[np.full(2000, T0), np.full(2000, T0 + 300.0)], _noise(4000), names))
    assert slow.rings.hv.shape[0] == 2000
    assert sorted(slow.series.ring[:2000].tolist()) == list(range(2000))


def test_a_jittered_five_minute_series_is_measured() -> None:
    # Intervals of 300 +/- 6 s: the running interval dips under 300 s, where 2,016 rows
    # are a little under a week. The ring is still lent and the statistic learned on
    # every row from the third (the second is the ring's first value; its tail's count).
    rng = np.random.default_rng(3)
    n = 3000
    t = T0 + np.cumsum(300.0 + rng.uniform(-6.0, 6.0, n))
    det = SeriesDetector()
    _feed(det, t, _noise(n), step=128)
    nn = slice(k.TAIL_NN * TAIL_COLUMNS, (k.TAIL_NN + 1) * TAIL_COLUMNS)
    tail = det.series.arrays["tails"][0, nn]
    assert det.series.ring[0] == 0 and tail[T_N] == n - 2


def test_an_evicted_series_gives_its_ring_back() -> None:
    # Series a goes quiet past the TTL and is evicted at the end of series b's batch; c,
    # arriving next, borrows a's row and the pool does not grow.
    det = SeriesDetector(series_ttl_s=12 * 3600.0)
    t = T0 + 300.0 * np.arange(50)
    det.update(_many(t, _noise(50), ["a"] * 50))
    assert det.series.ring[0] == 0
    later = t[-1] + 86400.0 + 300.0 * np.arange(50)
    det.update(_many(later, _noise(50), ["b"] * 50))
    assert len(det.series) == 1 and det.rings.hv.shape[0] == 2
    assert det.rings.free[: det.rings.n_free[0]].tolist() == [0]
    det.update(_many(later + 300.0 * 50, _noise(50, 1), ["c"] * 50))
    assert len(det.series) == 2 and det.rings.hv.shape[0] == 2
    assert sorted(det.series.ring[det.series.ring >= 0].tolist()) == [0, 1]
    c = int(np.flatnonzero(det.series.ring == 0)[0])
    assert det.series.arrays["st"][c, k.S_NN_N] == 49  # counted from c's second row
    np.testing.assert_array_equal(det.rings.hv[0, :49], _noise(50, 1)[1:].astype(np.float32))


def test_the_pool_reserves_reclaims_and_lends_its_lowest_rows_first() -> None:
    pool = RingPool(4)
    pool.reserve(3)
    assert tuple(pool.hv.shape) == (3, 4) and pool.free[: pool.n_free[0]].tolist() == [2, 1, 0]
    pool.reserve(5)  # grows to at least twice its size
    assert pool.hv.shape[0] == 6 and int(pool.n_free[0]) == 6
    ring = np.array([0, -1, 4, 2])  # rows 0, 4 and 2 held
    pool.reclaim(ring)
    assert pool.free[: pool.n_free[0]].tolist() == [5, 3, 1]


def _v10_payload(det: SeriesDetector) -> dict[str, Any]:
    """A snapshot of ``det`` as version 10 wrote it: a ring per series (``hv``, a column
    of the series' state, zeros where a series had none), no pool and 46 scalars.
    ``det``'s highest values are set to what a migration to version 12 starts them at
    (NaN: not kept), its episodes' opening rows to what one to version 13 starts
    them at (0: none), and its weekly profile to what one to version 14 starts it at,
    so the two detectors can be compared column for column."""
    det.series.arrays["st"][:, k.S_HIGHEST] = np.nan
    det.series.arrays["st"][:, k.S_ON_UA : k.S_ON_NOV + 1] = 0.0
    det.weeks = restart_week(det.series)  # version 14's start
    payload = pickle.loads(det.snapshot())
    new: SeriesState = payload["state"]["series"]
    cols: dict[str, Column] = {
        n: c for n, c in series_columns(48, k.S_HIGHEST).items() if n != "ring"
    }
    cols["hv"] = Column(dtype=np.float32, shape=(det.rings.width,))
    arrays = {n: a for n, a in new.arrays.items() if n != "ring"}
    arrays["st"] = arrays["st"][:, : k.S_HIGHEST]
    hv = np.zeros((new.arrays["st"].shape[0], det.rings.width), dtype=np.float32)
    held = new.ring >= 0
    hv[held] = payload["state"]["rings"].hv[new.ring[held]]
    arrays["hv"] = hv
    old = SeriesState(("series",), cols, ttl_s=new.registry.ttl_s)
    old.adopt(new.registry, arrays)
    state = {n: v for n, v in payload["state"].items() if n != "rings"}
    return {**payload, "state_version": 10, "state": {**state, "series": old}}


def test_version_10_snapshot_moves_its_rings_into_the_pool() -> None:
    # Three series: two at 5 minutes, one at 15 s; in version 10 each wrote every row
    # to a ring of its own. Restored, each 5-minute series borrows a row holding its
    # ring, the 15-second one (never measured) holds none and its count starts again,
    # and the detector scores the next rows exactly as the one that never went
    # through it.
    n = 2500
    t5, t15 = T0 + 300.0 * np.arange(n), T0 + 15.0 * np.arange(n)
    det = SeriesDetector()
    for i in range(0, n, 250):
        rows = slice(i, i + 250)
        ts = np.r_[t5[rows], t5[rows], t15[rows]]
        det.update(_many(ts, _noise(750, i), ["a"] * 250 + ["b"] * 250 + ["c"] * 250))
    assert sorted(det.series.ring[:3].tolist()) == [-1, 0, 1]
    payload = _v10_payload(det)
    assert "rings" not in payload["state"]
    fast = int(np.flatnonzero(det.series.ring[:3] < 0)[0])
    old = payload["state"]["series"]
    old.arrays["hv"][fast] = 7.0  # what version 10 wrote there
    old.arrays["st"][fast, k.S_NN_N] = n - 1
    back = SeriesDetector.restore(pickle.dumps(payload))
    assert back.series.ring[fast] == -1 and back.series.arrays["st"][fast, k.S_NN_N] == 0
    assert back.rings.hv.shape[0] == 2
    for sid in range(3):
        mine, theirs = det.series.ring[sid], back.series.ring[sid]
        assert (mine < 0) == (theirs < 0)
        if mine >= 0:
            np.testing.assert_array_equal(back.rings.hv[theirs], det.rings.hv[mine])
    restores_alike(det, payload, T0 + 300.0 * np.arange(n, n + 300), _noise(300, 7))
