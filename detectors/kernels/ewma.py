"""Event-time EWMA mean/variance, gated so that an ongoing anomaly is not learned."""

from __future__ import annotations

import math

import numpy as np

from detectors.kernels._base import A, _decay, _jit, _learn


@_jit
def ewma_update(
    ids: A,
    ts: A,
    x: A,
    mean: A,
    var: A,
    weight: A,
    last_t: A,
    frozen_since: A,
    half_life: float,
    min_weight: float,
    var_floor: float,
    gate_lo: float,
    gate_hi: float,
    max_freeze_s: float,
) -> A:
    """Event-time EWMA mean/variance; returns the pre-update z-score per row.

    The past's weight decays by half every ``half_life`` seconds of event time.
    z is 0 until the (decayed) weight reaches ``min_weight``. A row whose z is
    outside ``[gate_lo, gate_hi]`` is not learned (the baseline freezes) unless
    the series has been frozen for ``max_freeze_s``: then the row is accepted as
    the new normal (mean jumps to it, the weight restarts at 1 so the baseline
    re-learns quickly, the variance is kept).
    """
    n = ids.shape[0]
    z = np.empty(n, dtype=np.float64)
    for i in range(n):
        sid = ids[i]
        t = ts[i]
        v = x[i]
        if not math.isfinite(v):
            z[i] = np.nan
            continue
        wd = weight[sid] * _decay(t - last_t[sid], half_life)
        warm = wd >= min_weight
        zi = (v - mean[sid]) / math.sqrt(max(var[sid], var_floor)) if warm else 0.0
        z[i] = zi
        if warm and (zi > gate_hi or zi < gate_lo):
            if math.isnan(frozen_since[sid]):
                frozen_since[sid] = t
            if t - frozen_since[sid] < max_freeze_s:
                continue
            mean[sid] = v
            weight[sid] = 1.0
            frozen_since[sid] = np.nan
        else:
            frozen_since[sid] = np.nan
            _learn(mean, var, weight, sid, wd, v)
        if t > last_t[sid]:
            last_t[sid] = t
    return z
