"""Event-time slices of one batch: how much event time one engine step may judge.

Detectors that report per batch (error rate, latency, traffic, ...) judge a batch at
its last event time, and the lifecycle counts one data finding per step. A worker
that catches up on a backlog reads minutes of a series in one broker batch; judged
whole, an incident inside it would be one finding at the batch's end (short of the
rules' ``for_samples``, and timed at the end, not the onset). Cut into the slices
offline replay uses (``slice_s`` on an epoch grid, widened for sparse data so a slice
holds about ``min_rows`` rows, up to ``max_slice_s``), a backlog is judged as the same
events would be live, and as ``llmwatch replay`` judges them. A live batch (about a
second of events) is one slice.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt

SLICE_S = 5.0
MIN_ROWS = 512
MAX_SLICE_S = 60.0


def slice_width(n: int, span_s: float, slice_s: float, min_rows: int, max_slice_s: float) -> float:
    """``slice_s``, widened (whole multiples, at most ``max_slice_s``) so that a slice
    of ``n`` rows spread over ``span_s`` holds about ``min_rows``: the replayer's rule."""
    per_slice = n * slice_s / max(span_s, slice_s)
    mult = min(
        max(1.0, math.ceil(min_rows / max(per_slice, 1.0))),
        max(1.0, max_slice_s // slice_s),
    )
    return slice_s * mult


def event_slices(
    ts: npt.ArrayLike,
    slice_s: float = SLICE_S,
    min_rows: int = MIN_ROWS,
    max_slice_s: float = MAX_SLICE_S,
) -> list[tuple[int, int]]:
    """Contiguous row ranges ``[a, b)`` of a batch, cut where event time enters the
    next slice. Rows are never reordered (dead letters name rows by position); a row
    older than one before it stays in the later slice, as it would arrive live. Rows
    without a time go with the slice of the rows before them."""
    t = np.asarray(ts, dtype=np.float64)
    n = int(t.size)
    finite = t[np.isfinite(t)]
    if n == 0 or finite.size == 0:
        return [(0, n)] if n else []
    lo, hi = float(finite.min()), float(finite.max())
    width = slice_width(n, hi - lo, slice_s, min_rows, max_slice_s)
    if np.floor(lo / width) == np.floor(hi / width):
        return [(0, n)]
    run = np.maximum.accumulate(np.where(np.isfinite(t), t, finite[0]))
    k = np.floor(run / width)
    cuts = (np.flatnonzero(k[1:] > k[:-1]) + 1).tolist()
    edges = [0, *cuts, n]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]
