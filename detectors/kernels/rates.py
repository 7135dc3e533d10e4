"""Decayed binomial counts in event time and the Wilson lower bound."""

from __future__ import annotations

import math

import numpy as np

from detectors.kernels._base import A, _decay, _jit


@_jit
def decayed_counts_update(
    ids: A, ts: A, hits: A, n_tot: A, k_hit: A, last_t: A, half_life: float, frozen: A
) -> tuple[A, A]:
    """Exponentially decayed (requests, hits) per series in event time. Returns the
    post-update (n, k) per row. Series with ``frozen[sid]`` set are read, not updated.
    A late row is added with its own decayed weight and does not move the clock."""
    m = ids.shape[0]
    n_out = np.empty(m, dtype=np.float64)
    k_out = np.empty(m, dtype=np.float64)
    for i in range(m):
        sid = ids[i]
        t = ts[i]
        h = hits[i]
        if frozen[sid] or not math.isfinite(h):
            d = _decay(t - last_t[sid], half_life)
            n_out[i] = n_tot[sid] * d
            k_out[i] = k_hit[sid] * d
            continue
        if t > last_t[sid]:
            d = _decay(t - last_t[sid], half_life)
            n_tot[sid] *= d
            k_hit[sid] *= d
            last_t[sid] = t
            w = 1.0
        else:
            w = _decay(last_t[sid] - t, half_life)
        n_tot[sid] += w
        k_hit[sid] += w * h
        n_out[i] = n_tot[sid]
        k_out[i] = k_hit[sid]
    return n_out, k_out


@_jit
def wilson_lower(k: A, n: A, z: float) -> A:
    """Lower end of the Wilson score interval for k hits in n trials (0 where n <= 0)."""
    out = np.zeros(k.shape[0], dtype=np.float64)
    z2 = z * z
    for i in range(k.shape[0]):
        ni = n[i]
        if not (ni > 0.0):
            continue
        p = min(max(k[i] / ni, 0.0), 1.0)
        if p == 0.0:
            continue  # exactly 0: the formula's rounding would leave ~1e-17
        centre = p + z2 / (2.0 * ni)
        margin = z * math.sqrt(p * (1.0 - p) / ni + z2 / (4.0 * ni * ni))
        out[i] = max((centre - margin) / (1.0 + z2 / ni), 0.0)
    return out
