"""Change detection: two-sided CUSUM and Page-Hinkley."""

from __future__ import annotations

import math

import numpy as np

from detectors.kernels._base import A, _jit


@_jit
def cusum_update(ids: A, x: A, s_hi: A, s_lo: A, k: float, reset_at: float) -> tuple[A, A]:
    """Two-sided tabular CUSUM on standardised input; returns post-update (upper, lower)
    statistics per row. A side that reaches ``reset_at`` restarts from 0 on the next row."""
    n = ids.shape[0]
    hi = np.empty(n, dtype=np.float64)
    lo = np.empty(n, dtype=np.float64)
    for i in range(n):
        sid = ids[i]
        v = x[i]
        if not math.isfinite(v):
            hi[i] = np.nan
            lo[i] = np.nan
            continue
        if s_hi[sid] >= reset_at:
            s_hi[sid] = 0.0
        if s_lo[sid] >= reset_at:
            s_lo[sid] = 0.0
        s_hi[sid] = max(0.0, s_hi[sid] + v - k)
        s_lo[sid] = max(0.0, s_lo[sid] - v - k)
        hi[i] = s_hi[sid]
        lo[i] = s_lo[sid]
    return hi, lo


@_jit
def page_hinkley_update(
    ids: A, x: A, count: A, mean: A, cum: A, min_cum: A, delta: float, alpha: float
) -> A:
    """Page-Hinkley test for an upward shift of the mean; returns the statistic
    ``cum - min(cum)`` per row (negate ``x`` to watch for a downward shift).
    ``alpha`` (<= 1) fades old deviations, as in River's PageHinkley."""
    n = ids.shape[0]
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        sid = ids[i]
        v = x[i]
        if not math.isfinite(v):
            out[i] = np.nan
            continue
        count[sid] += 1.0
        mean[sid] += (v - mean[sid]) / count[sid]
        cum[sid] = alpha * cum[sid] + (v - mean[sid] - delta)
        if cum[sid] < min_cum[sid]:
            min_cum[sid] = cum[sid]
        out[i] = cum[sid] - min_cum[sid]
    return out
