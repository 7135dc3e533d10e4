"""A DDSketch-like log-bucket quantile sketch with event-time decay."""

from __future__ import annotations

import math

import numpy as np

from detectors.kernels._base import A, _jit


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
