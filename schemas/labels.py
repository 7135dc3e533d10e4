"""Label factorisation once per batch: integer codes per row, distinct keys per batch.

Six detectors key their state by label tuples ((model, version), (model, version,
gateway), ...). Hashing every row's labels in every detector was most of the
engine's time; here each label column is factorised once per batch (one dict pass),
combinations are formed with integer arithmetic, and the result is cached on the
batch, so a detector only looks up the batch's few distinct keys.

A missing label (None) is the empty label "", as everywhere in the detectors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Codes = npt.NDArray[np.intp]
Key = tuple[Any, ...]
# (code per row, key per code); codes are numbered in order of first appearance.
Factorised = tuple[Codes, list[Key]]

_COMPACT_AT = 1 << 40  # re-number a combined code before the product could overflow
# Cache keys: "name" (dense codes), these prefixes + name, (names...) (combinations).
_SEED = "seed:"
_SPARSE = "sparse:"


def _column(
    items: list[Any], distinct: dict[Any, None] | None = None
) -> tuple[Codes, list[Any]] | None:
    """(code per row, distinct values in order of first appearance); None if unhashable."""
    if distinct is None:
        try:
            distinct = dict.fromkeys(items)
        except TypeError:
            return None
    if None in distinct:
        items = ["" if v is None else v for v in items]
        distinct = dict.fromkeys(items)
    if len(distinct) == 1:
        return np.zeros(len(items), dtype=np.intp), list(distinct)
    position = {v: i for i, v in enumerate(distinct)}
    codes = np.fromiter(map(position.__getitem__, items), dtype=np.intp, count=len(items))
    return codes, list(distinct)


def seed(batch: Any, name: str, items: list[Any], distinct: dict[Any, None]) -> None:
    """Hand over a column's values and distinct values found while decoding, so its
    codes need no second hashing pass (they are computed only if a detector asks)."""
    _cache(batch)[_SEED + name] = (items, distinct)


def _renumber(combined: npt.NDArray[np.int64], size: int) -> tuple[Codes, Codes]:
    """Dense codes in order of first appearance, and the first row of each code.

    ``size`` bounds the codes; small bounds (the usual case) use an array indexed by
    code instead of a sort."""
    n = combined.size
    if size > max(4 * n, 1 << 16):
        _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty(order.size, dtype=np.intp)
        rank[order] = np.arange(order.size)
        return rank[inverse.reshape(-1)], first[order]
    first_of = np.full(size, n, dtype=np.intp)
    np.minimum.at(first_of, combined, np.arange(n))
    present = np.flatnonzero(first_of < n)
    by_first = present[np.argsort(first_of[present], kind="stable")]
    rank = np.empty(size, dtype=np.intp)
    rank[by_first] = np.arange(by_first.size)
    return rank[combined], first_of[by_first]


def _cache(batch: Any) -> dict[Any, Any]:
    try:
        found: dict[Any, Any] = batch._label_cache
    except AttributeError:
        found = {}
        # Columns are frozen; the cache is not a field (take/concat/pickle ignore it).
        object.__setattr__(batch, "_label_cache", found)
    return found


def _resolve(batch: Any, cache: dict[Any, Any], name: str) -> tuple[Codes, list[Any]] | None:
    """One column's dense codes: computed, from the decoder's seed, or from a parent's."""
    if name in cache:
        col: tuple[Codes, list[Any]] | None = cache[name]
        return col
    seeded = cache.pop(_SEED + name, None)
    sparse = cache.pop(_SPARSE + name, None)
    if seeded is not None:
        col = _column(*seeded)
    elif sparse is not None:
        codes, values = sparse
        dense, first = _renumber(codes.astype(np.int64), len(values))
        col = dense, [values[c] for c in codes[first].tolist()]
    else:
        col = _column(np.asarray(getattr(batch, name)).tolist())
    cache[name] = col
    return col


def _codes_values(batch: Any, cache: dict[Any, Any], name: str) -> tuple[Codes, list[Any]] | None:
    """Codes with a value list that may hold values no row has (no renumbering)."""
    sparse: tuple[Codes, list[Any]] | None = cache.get(_SPARSE + name)
    return sparse if sparse is not None else _resolve(batch, cache, name)


def _columns_of(cache: dict[Any, Any]) -> set[str]:
    """Columns with codes (or the makings of them); tuple keys are combinations."""
    return {k.split(":")[-1] for k in cache if isinstance(k, str)}


def carry_take(src: Any, dst: Any, index: Any) -> None:
    """After ``dst = src.take(index)``: hand ``src``'s column codes on, so the rows are not
    hashed again (replay splits and reorders batches before the engine sees them)."""
    cache = getattr(src, "_label_cache", None)
    if not cache:
        return
    out = _cache(dst)
    for name in _columns_of(cache):
        col = _codes_values(src, cache, name)
        if col is not None:
            out[_SPARSE + name] = (col[0][index], col[1])


def carry_concat(parts: list[Any], dst: Any) -> None:
    """After ``dst = concat(parts)``: the codes of columns every part has codes for."""
    caches = [getattr(p, "_label_cache", None) or {} for p in parts]
    if not parts or not all(caches):
        return
    out = _cache(dst)
    for name in set.intersection(*map(_columns_of, caches)):
        found = [_codes_values(p, c, name) for p, c in zip(parts, caches, strict=True)]
        cols = [c for c in found if c is not None]
        if len(cols) != len(found):
            continue
        union: dict[Any, int] = {}
        for _, values in cols:
            for v in values:
                union.setdefault(v, len(union))
        remapped = [
            np.array([union[v] for v in values], dtype=np.intp)[codes] for codes, values in cols
        ]
        out[_SPARSE + name] = (np.concatenate(remapped), list(union))


def label_codes(batch: Any, names: tuple[str, ...]) -> Factorised | None:
    """Codes and distinct keys of ``batch``'s label columns ``names``, cached on the batch.

    None when a label value is unhashable (the caller falls back to per-row keys).
    The batch's columns must not be mutated after the first call (batches never are).
    """
    cache = _cache(batch)
    if names in cache:
        found: Factorised | None = cache[names]
        return found
    columns: list[tuple[Codes, list[Any]]] = []
    for name in names:
        col = _resolve(batch, cache, name)
        if col is None:
            cache[names] = None
            return None
        columns.append(col)
    n = columns[0][0].size if columns else 0
    if n == 0:
        result: Factorised = (np.empty(0, dtype=np.intp), [])
    elif len(columns) == 1:
        codes, values = columns[0]
        result = (codes, [(v,) for v in values])
    else:
        combined = columns[0][0].astype(np.int64)
        size = len(columns[0][1])
        for codes, values in columns[1:]:
            if size * len(values) >= _COMPACT_AT:
                dense, _ = _renumber(combined, size)
                combined, size = dense.astype(np.int64), int(dense.max()) + 1
            combined = combined * len(values) + codes
            size *= len(values)
        dense, first = _renumber(combined, size)
        parts = [np.asarray(values, dtype=object)[codes[first]] for codes, values in columns]
        result = (dense, list(zip(*(p.tolist() for p in parts), strict=True)))
    cache[names] = result
    return result


def subset(found: Factorised, rows: npt.NDArray[np.intp]) -> Factorised:
    """``found`` restricted to ``rows``: codes renumbered, keys absent from them dropped."""
    codes, keys = found
    if rows.size == 0:
        return np.empty(0, dtype=np.intp), []
    dense, first = _renumber(codes[rows].astype(np.int64), len(keys))
    return dense, [keys[c] for c in codes[rows][first].tolist()]
