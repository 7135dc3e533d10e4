"""Hour-of-week seasonal baselines with a non-seasonal fallback."""

from __future__ import annotations

import math

import numpy as np

from detectors.kernels._base import A, _jit, _learn

HOURS_PER_WEEK = 168


@_jit
def hour_of_week(t: float) -> int:
    """0 = Monday 00:00-01:00 UTC (1970-01-01 was a Thursday)."""
    days = math.floor(t / 86400.0)
    dow = (days + 3) % 7
    hour = math.floor((t - days * 86400.0) / 3600.0)
    return dow * 24 + min(hour, 23)


@_jit
def seasonal_update(
    ids: A,
    ts: A,
    y: A,
    b_mean: A,
    b_var: A,
    b_w: A,
    g_mean: A,
    g_var: A,
    g_w: A,
    b_alpha: float,
    g_alpha: float,
    min_weight: float,
    var_floor: float,
    gate_lo: float,
    gate_hi: float,
) -> tuple[A, A, A]:
    """Hour-of-week baseline with a non-seasonal fallback. Returns (z, expected, sd) per
    row, pre-update. The row's hour-of-week bucket is used once it has ``min_weight``
    observations, else the series' overall EWMA; z is 0 (expected NaN) before either is
    warm. Both are count-based EWMAs (``b_alpha``/``g_alpha`` = weight of a new row at
    steady state). Rows with z outside ``[gate_lo, gate_hi]`` are not learned."""
    n = ids.shape[0]
    z = np.zeros(n, dtype=np.float64)
    expected = np.full(n, np.nan)
    sd = np.full(n, np.nan)
    for i in range(n):
        sid = ids[i]
        v = y[i]
        if not math.isfinite(v):
            z[i] = np.nan
            continue
        b = hour_of_week(ts[i])
        if b_w[sid, b] >= min_weight:
            mu = b_mean[sid, b]
            s = math.sqrt(max(b_var[sid, b], var_floor))
        elif g_w[sid] >= min_weight:
            mu = g_mean[sid]
            s = math.sqrt(max(g_var[sid], var_floor))
        else:
            mu = np.nan
            s = np.nan
        if math.isfinite(mu):
            zi = (v - mu) / s
            z[i] = zi
            expected[i] = mu
            sd[i] = s
            if zi > gate_hi or zi < gate_lo:
                continue
        _learn(b_mean[sid], b_var[sid], b_w[sid], b, b_w[sid, b] * (1.0 - b_alpha), v)
        _learn(g_mean, g_var, g_w, sid, g_w[sid] * (1.0 - g_alpha), v)
    return z, expected, sd
