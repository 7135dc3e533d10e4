"""How far a value is from every value its series took lately: the nearest-neighbour
distance to the last ``N`` values, a one-dimensional left discord.

The size statistics judge a value by its distance from the baseline. Many real faults
are values the series has not taken lately while still within its spread: a level
between two usual modes (a spiky disk writing at a rate between idle and its usual
burst), the first rows of a new level, a burst taller than the recent ones. The
distance to the nearest recent value sees those: 0 for a value already seen, small
inside a dense region, large in a gap or past the range. Like the matrix profile's
discords (and KNN-CAD) it needs no model of the series' shape, only its own history;
the series step judges it against the series' own streaming tail, so a series whose
values are always scattered learns that and pays nothing.

The ring holds raw values as float32, ``N`` values written at ``count % N``; ``count``
(rows written, a state scalar) says how many are valid. float32 halves the ring (8 KB a
week of 5-minute rows) and resolves a value to about 6e-8 of its magnitude, far finer
than any spread the statistic is scored on (the series step checks).

Rings are lent, not kept per series: ``N`` rows of a 15-second series are a few hours,
where the statistic is not measured, and most scraped series are that fast. A series
borrows a row of the pool ``hv`` (untransposed, so each ring is contiguous for the
scan) once its sampling interval lets ``N`` rows span the statistic's time
(``_base.lend_row``); ``ring[sid]`` is that row (-1: none). The pool's free rows are a
stack, ``free[:n_free[0]]``, that the caller fills before a batch
(``detectors._series_state.RingPool``). ``nearest_reference`` is the plain-numpy
reference.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from detectors.kernels._base import A, _jit

# A ring is lent, and the statistic measured, where N rows span this share of the
# statistic's time or more: a 5-minute scrape whose intervals jitter a few seconds either
# side of 300 s (the sampling interval is a running mean) stays measured.
SPAN_SLACK = 0.9


@njit(cache=True, fastmath=True)
def _min_distance(ring: A, v: float) -> float:
    # The scan is this statistic's whole cost. In float32, as the ring keeps the values
    # (a difference of two float32 values is as fine as the ring), and in eight
    # independent minima: LLVM does not vectorise a float min reduction here, and one
    # running minimum chains every comparison on the last (measured 1.2 us -> 0.56 us
    # for 2,016 values). The ring and v are always finite (the step skips the rest).
    vf = np.float32(v)
    n = ring.shape[0]
    m = n - n % 8
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = np.float32(np.inf)
    for j in range(0, m, 8):
        b0 = min(b0, abs(vf - ring[j]))
        b1 = min(b1, abs(vf - ring[j + 1]))
        b2 = min(b2, abs(vf - ring[j + 2]))
        b3 = min(b3, abs(vf - ring[j + 3]))
        b4 = min(b4, abs(vf - ring[j + 4]))
        b5 = min(b5, abs(vf - ring[j + 5]))
        b6 = min(b6, abs(vf - ring[j + 6]))
        b7 = min(b7, abs(vf - ring[j + 7]))
    best = min(min(min(b0, b1), min(b2, b3)), min(min(b4, b5), min(b6, b7)))
    for j in range(m, n):
        best = min(best, abs(vf - ring[j]))
    return float(best)


@_jit
def nearest_distance(hv: A, r: int, count: float, v: float) -> float:
    """The distance from ``v`` to the nearest of the last ``N`` values in ring row
    ``r`` (NaN while the ring is empty)."""
    have = min(int(count), hv.shape[1])
    if have == 0:
        return math.nan
    return float(_min_distance(hv[r, :have], v))


@_jit
def nearest_push(hv: A, r: int, count: float, v: float) -> float:
    """Write ``v`` into ring row ``r``; returns the new count."""
    hv[r, int(count) % hv.shape[1]] = v
    return count + 1.0


def nearest_reference(history: np.ndarray, n: int) -> np.ndarray:
    """Per row of ``history``: the distance to the nearest of the ``n`` rows before it
    (NaN on the first). What the ring kernels compute, written plainly."""
    out = np.full(history.size, np.nan)
    kept = history.astype(np.float32)  # as the ring keeps them
    for i in range(1, history.size):
        out[i] = float(np.min(np.abs(kept[max(0, i - n) : i] - np.float32(history[i]))))
    return out
