"""Small shared pieces for the per-series detectors: firing-state tracking and grouping.

Not a detector module (the leading underscore keeps ``detectors.config`` from scanning it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.base import Finding


class FiringState:
    """Remembers which (series, kind) keys were anomalous, to emit one recovery each.

    ``report`` is called once per key per batch with the key's current verdict; it
    returns the finding to emit: the anomalous finding, the single recovery finding
    the first time a previously anomalous key looks normal, or None.
    """

    def __init__(self) -> None:
        self.firing: set[Hashable] = set()

    def report(
        self, key: Hashable, anomalous: bool, make: Callable[[bool], Finding]
    ) -> Finding | None:
        if anomalous:
            self.firing.add(key)
            return make(True)
        if key in self.firing:
            self.firing.discard(key)
            return make(False)
        return None

    def forget(self, predicate: Callable[[Hashable], bool]) -> None:
        self.firing = {k for k in self.firing if not predicate(k)}


def groups(ids: npt.NDArray[np.int64]) -> Iterator[tuple[int, npt.NDArray[np.intp]]]:
    """Yield (series id, row positions in input order) for every id in a batch."""
    if ids.size == 0:
        return
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    cuts = np.flatnonzero(np.diff(sorted_ids)) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [ids.size]))
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        yield int(sorted_ids[s]), order[s:e]


def clean_ts(ts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Event times with NaN/inf replaced by the batch's last finite time (or 0)."""
    finite = np.isfinite(ts)
    if finite.all():
        return ts
    fill = float(ts[finite].max()) if finite.any() else 0.0
    return np.where(finite, ts, fill)


def labels_of(columns: tuple[npt.NDArray[Any], ...]) -> tuple[npt.NDArray[Any], ...]:
    """Label columns with None replaced by "" so every key is a tuple of strings."""
    out = []
    for col in columns:
        arr = np.asarray(col, dtype=object)
        if any(v is None for v in arr):
            arr = np.array(["" if v is None else str(v) for v in arr], dtype=object)
        out.append(arr)
    return tuple(out)


def fmt(value: float) -> str:
    """A short human number for explanations."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"
