"""Numba kernels: whole batches in, per-row results out, per-series state in arrays.

Every kernel takes the batch's dense series ids (``ids``, int64), event times
(``ts``, float64 epoch seconds, already finite) and values, plus the state arrays
indexed by series id, which it updates in place. The Python wrappers in the
detector modules own those arrays (allocation, growth, validation); kernels
trust their inputs. Non-finite values are skipped (they neither learn nor score;
their per-row output is NaN). Time never moves backwards: an event older than a
series' last event is learned without decaying the state and does not move the
series' clock.

Families: event-time EWMA (mean/variance with a half-life, gated so that an
ongoing anomaly is not learned), a DDSketch-like quantile sketch, CUSUM and
Page-Hinkley change detection, hour-of-week seasonal baselines, decayed binomial
counts with a Wilson bound, and inter-arrival (heartbeat) tracking.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit

HOURS_PER_WEEK = 168

A = npt.NDArray[Any]  # kernels take any-dtype arrays; the wrappers fix the dtypes
F = TypeVar("F", bound=Callable[..., Any])


def _jit(fn: F) -> F:
    # error_model="numpy": a zero variance yields inf/nan instead of raising
    # ZeroDivisionError from inside a worker's hot loop.
    return cast(F, njit(cache=True, error_model="numpy")(fn))


@_jit
def _decay(dt: float, half_life: float) -> float:
    if dt <= 0.0:
        return 1.0
    return float(2.0 ** (-dt / half_life))


@_jit
def _learn(mean: A, var: A, weight: A, sid: int, wd: float, v: float) -> None:
    # West's weighted incremental mean/variance: the new row has weight 1, the past wd.
    wn = wd + 1.0
    a = 1.0 / wn
    delta = v - mean[sid]
    mean[sid] += a * delta
    var[sid] = (1.0 - a) * (var[sid] + a * delta * delta)
    weight[sid] = wn


# --------------------------------------------------------------------------- EWMA


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


# --------------------------------------------------------------------------- quantile sketch


@_jit
def sketch_index(v: float, log_gamma: float, min_value: float) -> int:
    return math.ceil(math.log(max(v, min_value)) / log_gamma)


@_jit
def sketch_value(index: int, gamma: float) -> float:
    # The bucket (gamma^(i-1), gamma^i] is represented by the point with equal relative error.
    return float(2.0 * gamma**index / (gamma + 1.0))


@_jit
def _shift_up(row: A, shift: int) -> None:
    # Collapse the lowest buckets so the top moves up by ``shift``: high quantiles stay exact.
    nb = row.shape[0]
    if shift >= nb:
        s = row.sum()
        row[:] = 0.0
        row[0] = s
        return
    s = 0.0
    for j in range(shift + 1):
        s += row[j]
    row[0] = s
    for j in range(1, nb - shift):
        row[j] = row[j + shift]
    for j in range(nb - shift, nb):
        row[j] = 0.0


@_jit
def _rescale(counts: A, total: A, ref_t: A, sid: int, t: float, half_life: float) -> None:
    # Lazy decay: new rows weigh 2^((t - ref)/half_life); renormalise before overflow.
    f = 2.0 ** (-(t - ref_t[sid]) / half_life)
    for j in range(counts.shape[1]):
        counts[sid, j] *= f
    total[sid] *= f
    ref_t[sid] = t


@_jit
def _sketch_quantile(
    row: A, offset: int, total: float, q: float, unit: float, gamma: float
) -> float:
    # First bucket (from the bottom) whose cumulative weight exceeds q * (total - unit),
    # found scanning from the top because high quantiles are what we ask for.
    nb = row.shape[0]
    need = total - q * max(total - unit, 0.0)
    above = 0.0
    for j in range(nb - 1, -1, -1):
        above += row[j]
        if above >= need and row[j] > 0.0:
            return sketch_value(offset + j, gamma)
    for j in range(nb):
        if row[j] > 0.0:
            return sketch_value(offset + j, gamma)
    return np.nan


@_jit
def sketch_add(
    ids: A,
    ts: A,
    x: A,
    counts: A,
    offset: A,
    total: A,
    ref_t: A,
    gamma: float,
    min_value: float,
    half_life: float,
    q: float,
) -> tuple[A, A]:
    """Add rows to per-series log-bucket sketches; return (q-quantile, effective count) per row
    after the row is added. ``counts`` is (capacity, n_buckets); ``offset`` the index of each
    series' lowest bucket; ``total`` the summed weight; ``ref_t`` the time at which a row weighs
    1. ``half_life`` (seconds, may be inf) makes the sketch a decayed window."""
    n = ids.shape[0]
    nb = counts.shape[1]
    log_gamma = math.log(gamma)
    qs = np.empty(n, dtype=np.float64)
    eff = np.empty(n, dtype=np.float64)
    for i in range(n):
        sid = ids[i]
        t = ts[i]
        v = x[i]
        if not math.isfinite(v):
            qs[i] = np.nan
            eff[i] = np.nan
            continue
        # A sketch whose weight has decayed away starts afresh (and re-centres its buckets).
        if total[sid] <= 1e-30 or total[sid] * 2.0 ** (-(t - ref_t[sid]) / half_life) < 1e-9:
            counts[sid, :] = 0.0
            total[sid] = 0.0
            ref_t[sid] = t
            offset[sid] = sketch_index(v, log_gamma, min_value) - (3 * nb) // 4
        elif (t - ref_t[sid]) / half_life > 40.0:
            _rescale(counts, total, ref_t, sid, t, half_life)
        w = 2.0 ** ((t - ref_t[sid]) / half_life)
        k = sketch_index(v, log_gamma, min_value)
        top = offset[sid] + nb - 1
        if k > top:
            _shift_up(counts[sid], k - top)
            offset[sid] += k - top
        j = max(k - offset[sid], 0)
        counts[sid, j] += w
        total[sid] += w
        qs[i] = _sketch_quantile(counts[sid], offset[sid], total[sid], q, w, gamma)
        eff[i] = total[sid] / w
    return qs, eff


@_jit
def sketch_quantiles(
    sids: A,
    counts: A,
    offset: A,
    total: A,
    ref_t: A,
    now: float,
    half_life: float,
    gamma: float,
    q: A,
) -> tuple[A, A]:
    """Quantiles ``q`` (array) of the given series at time ``now``: (len(sids), len(q))
    values, and each series' effective count at ``now``."""
    out = np.full((sids.shape[0], q.shape[0]), np.nan)
    eff = np.zeros(sids.shape[0])
    for i in range(sids.shape[0]):
        sid = sids[i]
        if total[sid] <= 0.0:
            continue
        unit = 2.0 ** ((now - ref_t[sid]) / half_life)
        eff[i] = total[sid] / unit
        for j in range(q.shape[0]):
            out[i, j] = _sketch_quantile(counts[sid], offset[sid], total[sid], q[j], unit, gamma)
    return out, eff


@_jit
def sketch_merge(
    ca: A,
    oa: int,
    ta: float,
    ra: float,
    cb: A,
    ob: int,
    tb: float,
    rb: float,
    half_life: float,
) -> tuple[A, int, float, float]:
    """Merge two single sketches (bucket rows, offsets, totals, reference times).

    The result's lowest bucket is the higher of the two offsets (lower data collapses into
    it), its reference time the later one: so merging is commutative and associative up to
    floating-point rounding. Returns (counts, offset, total, ref_t)."""
    nb = ca.shape[0]
    out = np.zeros(nb, dtype=np.float64)
    if ta <= 0.0:
        return cb.copy(), ob, tb, rb
    if tb <= 0.0:
        return ca.copy(), oa, ta, ra
    ref = max(ra, rb)
    off = max(oa, ob)
    fa = 2.0 ** (-(ref - ra) / half_life)
    fb = 2.0 ** (-(ref - rb) / half_life)
    for j in range(nb):
        out[max(oa + j - off, 0)] += ca[j] * fa
        out[max(ob + j - off, 0)] += cb[j] * fb
    return out.astype(ca.dtype), off, ta * fa + tb * fb, ref


# --------------------------------------------------------------------------- change detection


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


# --------------------------------------------------------------------------- seasonal


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


# --------------------------------------------------------------------------- binomial rates


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
        centre = p + z2 / (2.0 * ni)
        margin = z * math.sqrt(p * (1.0 - p) / ni + z2 / (4.0 * ni * ni))
        out[i] = max((centre - margin) / (1.0 + z2 / ni), 0.0)
    return out


# --------------------------------------------------------------------------- heartbeat


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
