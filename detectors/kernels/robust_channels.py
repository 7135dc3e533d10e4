"""The generic series detector's statistics combined: the rarest of those in use and how
many there are (for the correction for testing several), and how far from the
prediction a value pages by itself (the range an explanation states); the young test
and where the nearest-value statistic is measured. Per row, from the series step
(``detectors.kernels.robust_series``)."""

from __future__ import annotations

import math

from detectors.kernels._base import A, _jit
from detectors.kernels.nearest import nearest_distance
from detectors.kernels.robust_layout import (
    TAIL_A,
    TAIL_AW,
    TAIL_D,
    TAIL_DN,
    TAIL_NN,
    TAIL_NV,
    TAIL_S,
    TAIL_SW,
    WHY_DENSITY,
    WHY_DRIFT,
    WHY_NEAR,
    WHY_NOVEL,
    WHY_POINT,
    WHY_WINDOW,
    tail_of,
)
from detectors.kernels.tail import (
    PRIOR_PEAKS,
    tail_logp,
    tail_logp_at_zero,
    tail_peaks,
    tail_u_at,
    tail_u_at_zero,
)

REACH_MAX = 10.0  # widest range an explanation states, in widths of the residual envelope


@_jit
def channels(
    tails: A, sid: int, seasonal: bool, u_s: float, win_s: float, u_a: float,
    win_a: float, u_d: float, dens: float, nov: float, u_nn: float, use_drift: float,
    a_dens: float, env_s: float,
) -> tuple[float, float, float]:  # fmt: skip
    """The smallest log tail probability over the statistics in use, how many are in
    use, and which one it was (``WHY_*``)."""
    if seasonal:
        lp, why = stat_logp(u_s, tails, TAIL_S, sid), WHY_POINT
        # The profile's window is judged once its tail has seen PRIOR_PEAKS excesses: a
        # handful of small ones set a scale (0.015 on an hourly daily cycle, against a
        # spread near 0.1) that reads the profile's own errors, a little past it, as
        # the budget's rarity (hourly series paged after their warm-up: 0.75 per
        # series-week, benchmarks.numbered_probe's series with nothing wrong).
        young = tail_peaks(tail_of(tails, TAIL_SW), sid) < PRIOR_PEAKS
        lw = 0.0 if young else stat_logp(win_s, tails, TAIL_SW, sid)
    else:
        lp, why = stat_logp(u_a, tails, TAIL_A, sid), WHY_POINT
        lw = stat_logp(win_a, tails, TAIL_AW, sid)
    n_ch = 2.0
    if lw < lp:
        lp, why = lw, WHY_WINDOW
    if not seasonal and use_drift > 0.0:
        n_ch += 1.0
        ld = stat_logp(u_d, tails, TAIL_D, sid)
        if ld < lp:
            lp, why = ld, WHY_DRIFT
    if a_dens > 0.0:
        n_ch += 1.0
        ln = stat_logp(dens, tails, TAIL_DN, sid)
        if ln < lp:
            lp, why = ln, WHY_DENSITY
    if env_s > 0.0:
        n_ch += 1.0
        lv = novelty_logp(nov, tails, sid)
        if lv < lp:
            lp, why = lv, WHY_NOVEL
    # Like the drift, the nearest value judges the plain series: with a daily profile in
    # use, the profile's own statistics judge a value in its hour (and one more test in
    # the correction would only blunt them).
    if not seasonal and u_nn == u_nn:
        n_ch += 1.0
        # A value already in the ring (distance 0) is never unusual here, even where
        # the tail's threshold, stepping by excesses of a very spiky series, has
        # wandered under 0 (which would read 0 as an excess).
        lq = stat_logp(u_nn, tails, TAIL_NN, sid) if u_nn > 0.0 else 0.0
        if lq < lp:
            lp, why = lq, WHY_NEAR
    return lp, n_ch, why


@_jit
def reach(
    fire: float, tails: A, t_pt: int, sid: int, sc: float, hi: float, lo: float,
    env_s: float, c: float,
) -> tuple[float, float]:  # fmt: skip
    """How far below and above the prediction one value pages on its own (its log tail
    probability at or under ``fire``): past the point statistic's threshold, or past the
    residual envelope by the novelty channel's threshold, whichever comes first. On a
    short or heavy-tailed history the point tail's reach alone runs to absurd values (it
    is a quantile of a log-compressed statistic, exponentiated) while anything that far
    beyond what the series has done pages as novel long before. NaN (no range) where it
    is more than ``REACH_MAX`` times as wide as the residuals seen lately. Both are
    scored ``c`` (half a step) nearer than they are, so both reach ``c`` further."""
    uq = tail_u_at(fire, tail_of(tails, t_pt), sid)
    half = math.expm1(max(uq, 0.0)) * sc + c
    down, up = half, half
    width = max(hi - lo, sc)
    if env_s > 0.0:
        nq = tail_u_at_zero(fire, tail_of(tails, TAIL_NV), sid)
        if nq < math.inf:
            grow = math.expm1(nq) * width + c
            down, up = max(min(half, grow - lo), 0.0), max(min(half, hi + grow), 0.0)
    if max(down, up) > REACH_MAX * width:
        # True, but it says nothing (a young series' tails): no range is claimed.
        return math.nan, math.nan
    return down, up


@_jit
def young_channel(
    v: float, lowest: float, highest: float, sc: float, c: float, k: float
) -> tuple[float, float, float]:
    """A young series' one test, before its tails can say how rare a value is: how far
    ``v`` lands beyond the range of every value the series took (``lowest``..``highest``),
    in widths of that range (at least the scale ``sc``), with ``c`` the continuity
    correction. It needs no fitted tail, and no baseline either (which may still be
    settling). Returns the score (0.5 at ``k`` widths beyond) and the lowest and highest
    values that do not page."""
    w = max(highest - lowest, sc)
    r = math.log1p(max(v - highest - c, lowest - v - c, 0.0) / w) / math.log1p(k)
    return r / (1.0 + r), lowest - k * w - c, highest + k * w + c


@_jit
def novelty_logp(nov: float, tails: A, sid: int) -> float:
    """log P(novelty >= ``nov``), the zero-threshold tail."""
    return tail_logp_at_zero(nov, tail_of(tails, TAIL_NV), sid)


@_jit
def stat_logp(u: float, tails: A, which: int, sid: int) -> float:
    """log P(U >= ``u``) on tail ``which`` (a ``TAIL_*``)."""
    return tail_logp(u, tail_of(tails, which), sid)


@_jit
def nearest_u(hv: A, r: int, count: float, v: float, half: float, sc: float, mag: float) -> float:
    """The distance from ``v`` to the nearest value in the series' ring (row ``r`` of the
    pool, ``count`` values written), where it is measured (the ring spans the statistic's
    time: the caller checks, as the last 2,016 rows of a 15-second series are a few
    hours and a weekly pattern's turn would be news): its steps are fine (``half``, half
    a step, under a twentieth of the scale ``sc``: on a coarse lattice, counts, the
    distance is a few whole steps, which a continuous tail cannot judge) and its spread
    is resolved by the ring's float32 values (``sc`` over 1e-5 of the magnitude ``mag``).
    NaN elsewhere."""
    if half > 0.05 * sc or sc <= 1e-5 * mag:
        return math.nan
    return nearest_distance(hv, r, count, v)
