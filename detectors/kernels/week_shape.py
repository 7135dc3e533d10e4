"""The weekly profile of the generic series detector: a level per hour of the week, for
series whose days differ in shape, not only in level (detected, not assumed).

A weekday and a weekend day of a taxi, ticket or web-traffic series differ in shape (the
weekday's morning rush is missing on Sunday, its late night is busier): the daily
profile learns their mixture, the weekday offsets only move it up or down, and the
residuals of every weekend widen the profile's tails until a holiday that looks like a
Sunday on a Thursday no longer shows. This profile keeps one level per hour of the week
(168 slots, read and learned with linear interpolation between slot centres, each slot
remembering about ``WEEK_MEMORY`` weeks of its own time), learned in the background from
the day the series' daily profile first comes into use (a weekly shape only matters to a
seasonal series), starting as that daily model (``week_start``). It replaces the daily
profile's prediction (with its weekday offsets) once it has learned for ``AFTER_DAYS``
and its residuals, averaged over a week, are below the daily model's by the same ratio
that brings the daily profile into use, and is dropped again above that ratio plus 0.1.
It learns the raw value, so it owes nothing to the daily profile after its start, and
moves with it when the level shifts while it is in use (``week_shift``).

A profile is a row of a pool (``WeekPool``) lent to the series that use one: the levels,
then the mean absolute residuals, per hour of the week, in float32 (a level needs no
more). The functions here take that row; the detector's ``S_WK_*`` columns hold the two
residual averages, the in-use flag and when the profile started learning.
"""

from __future__ import annotations

import math

from detectors.kernels._base import A, _jit
from detectors.kernels.robust_layout import (
    S_WEEK,
    S_WK_DAILY,
    S_WK_ON,
    S_WK_RES,
    S_WK_T0,
    TAIL_S,
    TAIL_SW,
    WEEK_S,
    profile_at,
    tail_of,
)
from detectors.kernels.tail import tail_soften
from detectors.kernels.weekday import weekday_of

SLOTS = 168
WIDTH = 2 * SLOTS  # a pool row: the levels, then the scales
SLOT_S = 3600.0
WEEK_MEMORY = 2.0  # weeks of its own time one slot remembers
AFTER_DAYS = 14.0  # every slot seen twice before the profile may be used


@_jit
def week_at(t: float) -> tuple[int, int, float]:
    """The two slots around ``t`` (0 = Thursday 00:00-01:00 UTC: epoch time's first hour)
    and the weight of the second."""
    phase = (t % WEEK_S) / SLOT_S - 0.5
    lo = math.floor(phase)
    return int(lo) % SLOTS, (int(lo) + 1) % SLOTS, phase - lo


@_jit
def week_start(row: A, st: A, pl: A, ps: A, pw: A, sid: int, t: float) -> None:
    """A row just lent to series ``sid`` starts as its daily model (the profile, and
    the weekday offsets where they are in use) at each hour of the week, and learns
    from ``t`` on."""
    k = pl.shape[0]
    offsets = st[S_WEEK, sid] > 0.5
    for j in range(SLOTS):
        tc = (j + 0.5) * SLOT_S  # the slot's centre, in epoch time's first week
        i0, i1, f = profile_at(tc, k)
        off = pw[weekday_of(tc), sid] if offsets else 0.0
        row[j] = (1.0 - f) * pl[i0, sid] + f * pl[i1, sid] + off
        row[SLOTS + j] = (1.0 - f) * ps[i0, sid] + f * ps[i1, sid]
    st[S_WK_T0, sid] = t
    st[S_WK_RES, sid] = st[S_WK_DAILY, sid] = st[S_WK_ON, sid] = 0.0


@_jit
def week_level(row: A, j0: int, j1: int, g: float) -> tuple[float, float]:
    """The weekly profile's level and mean absolute residual at a time (``week_at``)."""
    lvl = (1.0 - g) * row[j0] + g * row[j1]
    mad = (1.0 - g) * row[SLOTS + j0] + g * row[SLOTS + j1]
    return float(lvl), float(mad)


@_jit
def week_learn(
    st: A, row: A, tails: A, sid: int, t: float, gap: float, e_w: float, e_d: float,
    sc_w: float, sc_d: float, j0: int, j1: int, g: float, seas_ratio: float, seas_off: float,
    soften: float,
) -> None:  # fmt: skip
    """Learn one row: the slots move toward the value (``e_w``: it less the weekly level,
    before this row), the week-long averages of the weekly and the daily model's
    absolute residuals (``e_d``, the daily profile and weekday offsets) move, and the
    profile comes into use or out of it. Its age counts from ``S_WK_T0`` (its start)."""
    age_s = t - st[S_WK_T0, sid]
    weeks = age_s / WEEK_S
    a = 1.0 - math.exp(-min(gap, SLOT_S) / (SLOT_S * WEEK_MEMORY))
    # The first weeks are averaged, not decayed: a week's slot is seen once a week.
    a = min(a * max(1.0, WEEK_MEMORY / (weeks + 0.5)), 1.0)
    young = age_s < AFTER_DAYS * 86400.0
    lim = 1e300 if young else 3.0 * sc_w
    ew = min(max(e_w, -lim), lim)
    row[j0] += a * (1.0 - g) * ew
    row[j1] += a * g * ew
    # Each hour of the week has its own scale: a weekend night busier than a weekday's
    # is noisier too, which a scale by time of day alone would take for anomalies.
    aw = min(abs(e_w), 1e300 if young else 5.0 * sc_w)
    row[SLOTS + j0] += a * (1.0 - g) * (aw - row[SLOTS + j0])
    row[SLOTS + j1] += a * g * (aw - row[SLOTS + j1])
    if age_s < WEEK_S:
        return  # a slot's first rows meet a level it has not learned: not its error
    c = 1.0 - math.exp(-gap / WEEK_S)
    c = max(c, gap / max(age_s - WEEK_S + gap, gap))  # the first week's rows averaged
    cap = 5.0 * sc_d
    st[S_WK_RES, sid] += c * (min(abs(e_w), cap) - st[S_WK_RES, sid])
    st[S_WK_DAILY, sid] += c * (min(abs(e_d), cap) - st[S_WK_DAILY, sid])
    if not young:
        was = st[S_WK_ON, sid]
        ratio = st[S_WK_RES, sid] / max(st[S_WK_DAILY, sid], 1e-300)
        if ratio < seas_ratio:
            st[S_WK_ON, sid] = 1.0
        elif ratio > seas_off:
            st[S_WK_ON, sid] = 0.0
        if st[S_WK_ON, sid] != was:
            # The seasonal statistics now measure another model's residuals: what their
            # tails learned of the old one (a weekend's errors, for the daily model)
            # is only a prior, which the new residuals outweigh within ``soften`` rows.
            tail_soften(tail_of(tails, TAIL_S), sid, soften)
            tail_soften(tail_of(tails, TAIL_SW), sid, soften)


@_jit
def week_shift(st: A, rows: A, week: A, sid: int, d: float) -> None:
    """Move every slot by ``d`` where the weekly profile is in use (a rebase or a return
    moves the daily profile by it). Out of use, the level shifts the daily model finds
    are often its own error where days differ in shape (a weekend taken for a new
    level): the weekly profile follows a real one by learning it."""
    r = week[sid]
    if r >= 0 and st[S_WK_ON, sid] > 0.5:
        for j in range(SLOTS):
            rows[r, j] += d
