"""SeriesRegistry: dense stable ids, growth, eviction with id reuse, state round trip."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from detectors.registry import Column, SeriesRegistry, SeriesState, grow


def col(*values: str) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def test_ids_are_dense_and_stable() -> None:
    reg = SeriesRegistry(("model", "gw"))
    ids = reg.ids_for([col("a", "b", "a", "c"), col("x", "x", "x", "y")])
    assert ids.tolist() == [0, 1, 0, 2]
    again = reg.ids_for([col("c", "a"), col("y", "x")])
    assert again.tolist() == [2, 0]
    assert len(reg) == 3 and ("a", "x") in reg
    assert reg.labels(2) == {"model": "c", "gw": "y"}
    assert sorted(reg.active_ids().tolist()) == [0, 1, 2]


def test_a_missing_label_and_an_empty_one_are_one_new_series() -> None:
    reg = SeriesRegistry(("model", "gw"))
    models = np.empty(3, dtype=object)
    models[:] = [None, "", "b"]
    ids = reg.ids_for([models, col("x", "x", "x")])
    assert ids.tolist() == [0, 0, 1]
    assert len(reg) == 2 and reg.key(0) == ("", "x")


def test_empty_batch_and_wrong_column_count() -> None:
    reg = SeriesRegistry(("a", "b"))
    assert reg.ids_for([col(), col()]).size == 0
    with pytest.raises(ValueError, match="expected 2 label columns"):
        reg.ids_for([col("x")])
    with pytest.raises(KeyError):
        reg.key(5)


def test_capacity_grows_by_doubling() -> None:
    reg = SeriesRegistry(("s",), initial_capacity=2)
    names = [f"s{i}" for i in range(9)]
    ids = reg.ids_for([col(*names)], ts=np.arange(9.0))
    assert ids.tolist() == list(range(9))
    assert reg.capacity == 16 and reg.last_seen.shape == (16,)
    assert reg.last_seen[:9].tolist() == list(range(9))
    assert np.isneginf(reg.last_seen[9:]).all()


def test_grow_keeps_rows_and_fills_new_ones() -> None:
    arr = np.arange(6.0).reshape(3, 2)
    out = grow(arr, 5, -1.0)
    assert out.shape == (5, 2) and out[:3].tolist() == arr.tolist() and (out[3:] == -1).all()
    assert grow(arr, 2, 0.0) is arr
    ints = grow(np.array([[1, 2]], dtype=np.int64), 4, 0)
    assert ints.dtype == np.int64 and ints.tolist() == [[1, 2], [0, 0], [0, 0], [0, 0]]


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_zero_filled_reserve_is_not_resident_until_written() -> None:
    # Capacity doubles, so up to half of every zero-filled state array is reserve; it
    # must not cost memory before series arrive to use it.
    arr = np.ones((1024, 64), dtype=np.float32)
    before = _rss()
    out = grow(arr, 1024 * 1024, 0.0)  # 256 MiB, almost all reserve
    assert _rss() - before < 32 * 2**20
    assert out[:1024].sum() == 1024 * 64 and not out[1024:].any()


def test_eviction_frees_ids_for_reuse() -> None:
    reg = SeriesRegistry(("s",), ttl_s=100)
    reg.ids_for([col("old", "keep")], ts=np.array([0.0, 0.0]))
    reg.ids_for([col("keep")], ts=np.array([150.0]))
    freed = reg.evict_idle(now=150.0)
    assert freed.tolist() == [0]
    assert "old" not in reg and ("old",) not in reg and len(reg) == 1
    new = reg.ids_for([col("new")], ts=np.array([160.0]))
    assert new.tolist() == [0]  # the freed id is reused
    assert reg.labels(0) == {"s": "new"}
    assert reg.evict_idle(now=160.0).size == 0


def test_last_seen_keeps_the_latest_time_within_a_batch() -> None:
    reg = SeriesRegistry(("s",))
    reg.ids_for([col("a", "a", "a")], ts=np.array([5.0, 9.0, 7.0]))
    assert reg.last_seen[0] == 9.0


def test_state_round_trip() -> None:
    reg = SeriesRegistry(("s",), ttl_s=100)
    reg.ids_for([col("a", "b", "c")], ts=np.array([0.0, 0.0, 200.0]))
    reg.evict_idle(200.0)
    other = SeriesRegistry(("x",))
    other.set_state(reg.state())
    assert other.label_names == ("s",) and other.ttl_s == 100
    assert (
        other.ids_for([col("c", "d", "e")]).tolist() == reg.ids_for([col("c", "d", "e")]).tolist()
    )
    assert other.last_seen.tolist() == reg.last_seen.tolist()


def test_bytes_per_series_is_positive_and_bounded() -> None:
    reg = SeriesRegistry(("model", "version"))
    assert reg.bytes_per_series() == 0.0
    reg.ids_for([col(*[f"m{i}" for i in range(100)]), col(*["v1"] * 100)])
    per = reg.bytes_per_series()
    assert 50 < per < 2000


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        SeriesRegistry(("s",), ttl_s=0)


class Clash:
    """A label whose hash always collides: grouping by hash alone would merge them."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        return 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Clash) and other.name == self.name


def test_hash_collisions_still_give_distinct_series() -> None:
    reg = SeriesRegistry(("s",))
    a, b = Clash("a"), Clash("b")
    column = np.empty(4, dtype=object)
    column[:] = [a, b, Clash("a"), b]
    assert reg.ids_for([column], ts=np.array([1.0, 2.0, 3.0, 4.0])).tolist() == [0, 1, 0, 1]
    assert reg.last_seen[:2].tolist() == [3.0, 4.0]


def test_matches_per_row_lookup_on_a_large_batch() -> None:
    rng = np.random.default_rng(1)
    models = col(*[f"m{i}" for i in rng.integers(0, 300, 20_000)])
    gws = col(*[f"g{i}" for i in rng.integers(0, 7, 20_000)])
    ts = rng.uniform(0, 100, 20_000)
    reg = SeriesRegistry(("model", "gw"))
    ids = reg.ids_for([models, gws], ts)
    expected: dict[tuple[str, str], int] = {}
    for key in zip(models.tolist(), gws.tolist(), strict=True):
        expected.setdefault(key, len(expected))  # ids in order of first appearance
    keys = list(zip(models.tolist(), gws.tolist(), strict=True))
    assert ids.tolist() == [expected[k] for k in keys]
    newest: dict[int, float] = {}
    for sid, t in zip(ids.tolist(), ts.tolist(), strict=True):
        newest[sid] = max(newest.get(sid, -np.inf), t)
    assert reg.last_seen[: len(newest)].tolist() == [newest[i] for i in range(len(newest))]


def test_unhashable_label_is_an_error() -> None:
    column = np.empty(2, dtype=object)
    column[:] = [["a"], ["a"]]
    with pytest.raises(TypeError):
        SeriesRegistry(("s",)).ids_for([column])


def test_missing_label_is_the_empty_label() -> None:
    reg = SeriesRegistry(("model", "gw"))
    models = np.empty(3, dtype=object)
    models[:] = ["m", None, "m"]
    assert reg.ids_for([models, col("", "x", "")]).tolist() == [0, 1, 0]
    assert reg.labels(1) == {"model": "", "gw": "x"}
    nan_gw = np.empty(2, dtype=object)
    nan_gw[:] = [None, float("nan")]  # NaN defeats grouping by hash: exact path
    assert reg.ids_for([col("m", "m"), nan_gw]).tolist() == [0, 2]


def _state() -> SeriesState:
    cols = {
        "n": Column(0.0),
        "t": Column(-np.inf),
        "head": Column(-1, np.int64, (2,)),
    }
    return SeriesState(("model",), cols, ttl_s=10.0, slots=3, initial_capacity=2)


def test_series_state_names_grows_and_resets() -> None:
    st = _state()
    assert st.n.shape == (6,) and st.head.shape == (6, 2) and st.head.dtype == np.int64
    assert np.isneginf(st.t).all() and (st.head == -1).all()
    ids = st.ids_for([col("a", "b", "c")], np.array([0.0, 0.0, 5.0]))
    assert ids.tolist() == [0, 1, 2] and st.n.shape == (12,)  # capacity doubled to 4
    assert np.isneginf(st.t[6:]).all() and (st.head[6:] == -1).all()
    st.n[st.rows(ids)] = 1.0
    st.head[st.rows(np.array([1]))] = 7
    assert st.rows(np.array([1])).tolist() == [3, 4, 5]
    # a and b idle past the TTL: freed and reset to their fills, c kept.
    assert st.evict(12.0) == {0, 1}
    assert st.n[:6].tolist() == [0.0] * 6 and (st.head[:6] == -1).all()
    assert st.n[6:9].tolist() == [1.0] * 3
    assert len(st) == 1 and st.bytes_per_series() == 3 * (8 + 8 + 16)
    assert st.bytes_per_series(["n"]) == 24


def test_series_state_adopts_an_older_layout() -> None:
    st = _state()
    reg = SeriesRegistry(("model",), ttl_s=10.0, initial_capacity=2)
    reg.ids_for([col("a")])
    # An older snapshot without "head": it starts fresh, the rest is copied.
    st.adopt(reg, {"n": np.arange(6.0), "t": np.zeros(6)})
    assert st.registry is reg and st.n.tolist() == list(range(6))
    assert (st.head == -1).all() and st.head.shape == (6, 2)
    round_trip = pickle.loads(pickle.dumps(st))
    assert round_trip.n.tolist() == st.n.tolist() and round_trip.registry.labels(0) == {
        "model": "a"
    }
