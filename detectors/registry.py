"""Series registry: label sets to dense integer ids, so detector state lives in arrays.

Ids are reused after a series is evicted for idleness, so a fleet that churns
through request routes or GPUs does not grow without bound. Detectors learn which
ids were recycled from ``evict_idle`` and reset their slots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.labels import Factorised, label_codes, subset

Key = tuple[str, ...]


def grow(arr: npt.NDArray[Any], capacity: int, fill: Any) -> npt.NDArray[Any]:
    """Return ``arr`` extended to ``capacity`` rows (first axis), new rows set to ``fill``."""
    if arr.shape[0] >= capacity:
        return arr
    shape = (capacity, *arr.shape[1:])
    if np.ndim(fill) == 0 and fill == 0:
        # Zeroed memory comes from fresh pages the kernel maps on first write, so the
        # capacity held in reserve costs no RSS until series arrive to use it.
        out = np.zeros(shape, dtype=arr.dtype)
    else:
        out = np.empty(shape, dtype=arr.dtype)
        out[arr.shape[0] :] = fill
    out[: arr.shape[0]] = arr
    return out


def _no_none(key: tuple[Any, ...]) -> Key:
    # A missing label is the empty label, so callers need not clean columns row by row.
    return tuple("" if v is None else v for v in key)


def _factorise(
    arrays: list[npt.NDArray[Any]],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]] | None:
    """(code of each row's key, one row of each code), or None if unsure.

    Rows are grouped by a 64-bit mix of their labels' hashes (str hashes are cached, and
    the grouping is one integer sort), then every row is checked equal to its group's
    representative; a hash collision or an unhashable or NaN label makes the caller
    fall back to exact per-row lookups.
    """
    n = arrays[0].size
    try:
        mixed = np.zeros(n, dtype=np.uint64)
        for a in arrays:
            h = np.fromiter(map(hash, a.tolist()), dtype=np.int64, count=n).view(np.uint64)
            mixed = mixed * np.uint64(0x9E3779B97F4A7C15) ^ h
    except TypeError:
        return None
    order = np.argsort(mixed)
    ordered = mixed[order]
    new = np.empty(n, dtype=np.bool_)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    codes = np.empty(n, dtype=np.intp)
    codes[order] = np.cumsum(new) - 1
    # The first row of each group, so new series get ids in order of appearance.
    reps = np.minimum.reduceat(order, np.flatnonzero(new))
    rows = reps[codes]
    for a in arrays:
        if not bool(np.all(a == a[rows])):
            return None
    return codes, reps


class SeriesRegistry:
    """Maps label tuples (in ``label_names`` order) to dense ids in ``[0, capacity)``."""

    def __init__(
        self, label_names: Sequence[str], ttl_s: float = 7 * 86400.0, initial_capacity: int = 256
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.label_names: tuple[str, ...] = tuple(label_names)
        self.ttl_s = float(ttl_s)
        self._ids: dict[Key, int] = {}
        self._keys: list[Key | None] = []
        self._free: list[int] = []
        self.capacity = max(1, int(initial_capacity))
        self.last_seen = np.full(self.capacity, -np.inf, dtype=np.float64)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def _new_id(self, key: Key) -> int:
        if self._free:
            sid = self._free.pop()
            self._keys[sid] = key
        else:
            sid = len(self._keys)
            self._keys.append(key)
            if sid >= self.capacity:
                # Doubling keeps growth amortised O(1) per new series.
                self.capacity *= 2
                self.last_seen = grow(self.last_seen, self.capacity, -np.inf)
        self._ids[key] = sid
        return sid

    def id_for(self, key: Key) -> int:
        sid = self._ids.get(key)
        return self._new_id(key) if sid is None else sid

    def ids_for(
        self, columns: Sequence[npt.NDArray[Any]], ts: npt.NDArray[np.float64] | None = None
    ) -> npt.NDArray[np.int64]:
        """Dense ids for each row of a batch given its label columns (one per label name).

        A None label counts as "" (as ``labels_of`` would make it).
        """
        if len(columns) != len(self.label_names):
            raise ValueError(f"expected {len(self.label_names)} label columns, got {len(columns)}")
        n = len(columns[0]) if columns else 0
        if n == 0:
            return np.empty(0, dtype=np.int64)
        arrays = [np.asarray(c, dtype=object) for c in columns]
        if any(a.shape != (n,) for a in arrays):
            raise ValueError("label columns must be 1-d and of equal length")
        found = _factorise(arrays)
        if found is None:
            return self._ids_exact(arrays, n, ts)
        codes, reps = found
        # Python work per distinct key of the batch, not per row; codes renumbered to
        # first appearance, so new keys get ids in that order.
        first = np.argsort(reps)
        rank = np.empty(reps.size, dtype=np.intp)
        rank[first] = np.arange(reps.size)
        keys = list(zip(*(a[reps[first]].tolist() for a in arrays), strict=True))
        keys = [_no_none(k) if None in k else k for k in keys]
        return self.ids_for_codes((rank[codes], keys), ts)

    def ids_for_batch(
        self,
        batch: Any,
        names: Sequence[str],
        ts: npt.NDArray[np.float64] | None = None,
        rows: npt.NDArray[np.intp] | None = None,
    ) -> npt.NDArray[np.int64]:
        """``ids_for`` of ``batch``'s columns ``names`` (optionally only ``rows``), using
        the batch's cached label codes so only its distinct keys are looked up."""
        found = label_codes(batch, tuple(names))
        if found is None:
            cols = [np.asarray(getattr(batch, c), dtype=object) for c in names]
            return self.ids_for([c if rows is None else c[rows] for c in cols], ts)
        return self.ids_for_codes(found if rows is None else subset(found, rows), ts)

    def ids_for_codes(
        self, found: Factorised, ts: npt.NDArray[np.float64] | None = None
    ) -> npt.NDArray[np.int64]:
        """Dense ids from per-row codes and the distinct keys (None-free, first-seen order)."""
        codes, keys = found
        if len(keys) and len(keys[0]) != len(self.label_names):
            raise ValueError(f"expected {len(self.label_names)} labels, got {len(keys[0])}")
        got = list(map(self._ids.get, keys))
        if None in got:
            # id_for looks again: two keys can clean to one (None and "" labels).
            got = [self.id_for(k) if s is None else s for k, s in zip(keys, got, strict=True)]
        sids = np.array(got, dtype=np.int64)
        if ts is not None and codes.size:
            newest = np.full(len(keys), -np.inf)
            np.maximum.at(newest, codes, ts)
            np.maximum.at(self.last_seen, sids, newest)
        ids: npt.NDArray[np.int64] = sids[codes]
        return ids

    def _ids_exact(
        self, arrays: list[npt.NDArray[Any]], n: int, ts: npt.NDArray[np.float64] | None
    ) -> npt.NDArray[np.int64]:
        """Per-row dict lookups: for labels ``_factorise`` cannot vouch for."""
        keys = list(zip(*(a.tolist() for a in arrays), strict=True))
        lookup = self._ids
        uniq = {k: lookup.get(k) for k in dict.fromkeys(keys)}
        for k, sid in uniq.items():
            if sid is None:
                clean = _no_none(k) if None in k else k
                uniq[k] = self._ids.get(clean)
                if uniq[k] is None:
                    uniq[k] = self._new_id(clean)
        ids = np.fromiter((uniq[k] for k in keys), dtype=np.int64, count=n)
        if ts is not None:
            np.maximum.at(self.last_seen, ids, ts)
        return ids

    def key(self, sid: int) -> Key:
        key = self._keys[sid] if 0 <= sid < len(self._keys) else None
        if key is None:
            raise KeyError(f"series id {sid} is not registered")
        return key

    def labels(self, sid: int) -> dict[str, str]:
        return dict(zip(self.label_names, self.key(sid), strict=True))

    def active_ids(self) -> npt.NDArray[np.int64]:
        return np.fromiter(self._ids.values(), dtype=np.int64, count=len(self._ids))

    def evict_idle(self, now: float) -> npt.NDArray[np.int64]:
        """Forget series unseen for longer than the TTL; returns the freed ids."""
        active = self.active_ids()
        if active.size == 0:
            return active
        stale = active[self.last_seen[active] < now - self.ttl_s]
        for sid in stale.tolist():
            key = self._keys[sid]
            assert key is not None
            del self._ids[key]
            self._keys[sid] = None
            self._free.append(sid)
            self.last_seen[sid] = -np.inf
        return stale

    def bytes_per_series(self) -> float:
        """Registry overhead per live series: dict entry, key tuple, last-seen slot."""
        if not self._ids:
            return 0.0
        import sys

        sample = next(iter(self._ids))
        per_key = sys.getsizeof(sample) + sum(sys.getsizeof(s) for s in sample)
        dict_bytes = sys.getsizeof(self._ids) / len(self._ids)
        return float(per_key + dict_bytes + 8 + 8 + self.last_seen.itemsize)

    def state(self) -> dict[str, Any]:
        return {
            "keys": list(self._keys),
            "free": list(self._free),
            "capacity": self.capacity,
            "last_seen": self.last_seen.copy(),
            "ttl_s": self.ttl_s,
            "label_names": self.label_names,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.label_names = tuple(state["label_names"])
        self.ttl_s = float(state["ttl_s"])
        self._keys = list(state["keys"])
        self._free = list(state["free"])
        self.capacity = int(state["capacity"])
        self.last_seen = np.array(state["last_seen"], dtype=np.float64)
        self._ids = {k: i for i, k in enumerate(self._keys) if k is not None}


@dataclass(frozen=True, slots=True)
class Column:
    """One named per-series array: its value for a fresh series, dtype and cell shape."""

    fill: Any = 0.0
    dtype: Any = np.float64
    shape: tuple[int, ...] = ()


def _fresh(col: Column, rows: int) -> npt.NDArray[Any]:
    shape = (rows, *col.shape)
    if np.ndim(col.fill) == 0 and col.fill == 0:
        return np.zeros(shape, dtype=col.dtype)  # calloc'd: unresident until used
    return np.full(shape, col.fill, dtype=col.dtype)


class SeriesState:
    """A registry and the named state arrays of its series: the one way a detector keeps
    per-series state. ``slots`` rows per series (row ``sid * slots + k``, e.g. one per
    metric, so kernels see flat arrays). Arrays grow with the registry, freed ids are
    reset to their fill, and ``state``/``set_state`` snapshot them by name. Read an
    array as an attribute (``st.mean``) and write it in place (``st.mean[rows] = x``).
    """

    def __init__(
        self,
        labels: Sequence[str],
        columns: Mapping[str, Column],
        *,
        ttl_s: float,
        slots: int = 1,
        initial_capacity: int = 8,
    ) -> None:
        self.registry = SeriesRegistry(labels, ttl_s=ttl_s, initial_capacity=initial_capacity)
        self.columns = dict(columns)
        self.slots = slots
        rows = self.registry.capacity * slots
        self.arrays = {name: _fresh(c, rows) for name, c in self.columns.items()}
        self._publish()

    def _publish(self) -> None:
        # Each array is also an instance attribute, so ``st.mean`` is a plain lookup in
        # per-series loops (``__getattr__`` only types them and is rarely reached).
        self.__dict__.update(self.arrays)

    def __getattr__(self, name: str) -> npt.NDArray[Any]:
        arrays = self.__dict__.get("arrays")
        if arrays is None or name not in arrays:
            raise AttributeError(name)
        out: npt.NDArray[Any] = arrays[name]
        return out

    def __len__(self) -> int:
        return len(self.registry)

    def ids(
        self,
        batch: Any,
        ts: npt.NDArray[np.float64] | None = None,
        rows: npt.NDArray[np.intp] | None = None,
    ) -> npt.NDArray[np.int64]:
        """Series ids of ``batch``'s rows (optionally only ``rows``), registering new
        series and growing the arrays for them."""
        ids = self.registry.ids_for_batch(batch, self.registry.label_names, ts, rows)
        self.grow()
        return ids

    def ids_for(
        self, columns: Sequence[npt.NDArray[Any]], ts: npt.NDArray[np.float64] | None = None
    ) -> npt.NDArray[np.int64]:
        """``ids`` from label columns (``SeriesRegistry.ids_for``)."""
        ids = self.registry.ids_for(columns, ts)
        self.grow()
        return ids

    def grow(self) -> None:
        rows = self.registry.capacity * self.slots
        if next(iter(self.arrays.values())).shape[0] >= rows:
            return
        for name, c in self.columns.items():
            self.arrays[name] = grow(self.arrays[name], rows, c.fill)
        self._publish()

    def rows(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Every row (slot) of the series ``ids``."""
        out: npt.NDArray[np.int64] = (ids[:, None] * self.slots + np.arange(self.slots)).ravel()
        return out

    def reset(self, ids: npt.NDArray[np.int64]) -> None:
        """Set series ``ids`` to the fresh state."""
        if ids.size:
            rows = self.rows(ids)
            for name, c in self.columns.items():
                self.arrays[name][rows] = c.fill

    def evict(self, now: float) -> set[int]:
        """Forget series idle past the TTL and reset their rows; returns the freed ids."""
        freed = self.registry.evict_idle(now)
        self.reset(freed)
        return set(freed.tolist())

    def labels(self, sid: int) -> dict[str, str]:
        return self.registry.labels(sid)

    def bytes_per_series(self, names: Sequence[str] | None = None) -> int:
        """Array bytes per series (of ``names``, default all)."""
        chosen = self.columns if names is None else names
        per_row = sum(
            np.dtype(self.columns[n].dtype).itemsize * int(np.prod(self.columns[n].shape))
            for n in chosen
        )
        return int(per_row * self.slots)

    def adopt(self, registry: SeriesRegistry, arrays: Mapping[str, npt.ArrayLike]) -> None:
        """Take over an older layout's registry and arrays (a snapshot migration)."""
        self.registry = registry
        self.load(arrays)

    def load(self, arrays: Mapping[str, npt.ArrayLike]) -> None:
        """Arrays by name (from an older layout); a column missing from them starts fresh."""
        rows = self.registry.capacity * self.slots
        for name, c in self.columns.items():
            got = arrays.get(name)
            self.arrays[name] = (
                _fresh(c, rows) if got is None else np.asarray(got, dtype=c.dtype).copy()
            )
        self._publish()
        self.grow()
