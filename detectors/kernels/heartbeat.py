"""Inter-arrival (heartbeat) tracking: expected gaps and silence ratios."""

from __future__ import annotations

import math

import numpy as np

from detectors.kernels._base import A, _jit


@_jit
def heartbeat_update(
    ids: A,
    ts: A,
    last_t: A,
    gap_mean: A,
    gap_w: A,
    alpha: float,
    min_weight: float,
    clip: float,
) -> A:
    """Learn each series' expected inter-arrival time; returns the pre-update ratio
    gap / expected gap per row (0 until warm). Gaps are winsorised at ``clip`` times the
    expected gap, so one silence does not teach the series to be silent, while a lasting
    slowdown is still learned (a factor of ``clip`` per row at most)."""
    n = ids.shape[0]
    ratio = np.zeros(n, dtype=np.float64)
    for i in range(n):
        sid = ids[i]
        t = ts[i]
        if not math.isfinite(last_t[sid]):
            last_t[sid] = t
            continue
        gap = t - last_t[sid]
        if gap < 0.0:
            continue  # late: the series' clock does not go back
        warm = gap_w[sid] >= min_weight
        if warm and gap_mean[sid] > 0.0:
            ratio[i] = gap / gap_mean[sid]
        if warm:
            gap = min(gap, clip * max(gap_mean[sid], 1e-9))
        wn = gap_w[sid] * (1.0 - alpha) + 1.0
        gap_mean[sid] += (gap - gap_mean[sid]) / wn
        gap_w[sid] = wn
        last_t[sid] = t
    return ratio


@_jit
def silence_ratio(sids: A, now: float, last_t: A, gap_mean: A, gap_w: A, min_weight: float) -> A:
    """(now - last event) / expected gap for the given series; 0 where not warm."""
    out = np.zeros(sids.shape[0], dtype=np.float64)
    for i in range(sids.shape[0]):
        sid = sids[i]
        if gap_w[sid] >= min_weight and gap_mean[sid] > 0.0 and math.isfinite(last_t[sid]):
            out[i] = max(now - last_t[sid], 0.0) / gap_mean[sid]
    return out
