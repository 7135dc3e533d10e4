"""Weekday offsets of the generic series detector: each weekday's mean against a weekly
level, used once they explain the day-to-day spread (detected, not assumed).

The level is Holt-Winters style: it follows day means less their own offsets, and the
offsets are kept at mean zero (what they lose goes to the level). A plain running mean
of day means swings over the week (down after a weekend, back up over the weekdays), so
offsets measured against it came out biased, one weekday against the next, and the
detector paged on its own model's error where the offset changes at midnight.

``w`` is the detector's run of seven consecutive per-series columns (``W_*`` rows, one
column per series), passed as a view.
"""

from __future__ import annotations

import math

from detectors.kernels._base import A, _jit

W_WEEK, W_RW, W_DAY, W_DAY_SUM, W_DAY_N, W_WMEAN, W_RD = range(7)
WEEKDAYS = 7
DAY_S = 86400.0


@_jit
def weekday_of(t: float) -> int:
    """The UTC weekday of epoch time ``t``, 0 = Monday (1970-01-01 was a Thursday)."""
    return int(math.floor(t / DAY_S) + 3) % WEEKDAYS


@_jit
def weekday_step(w: A, pw: A, sid: int, t: float, v: float, first_t: float) -> None:
    """Weekday offsets from day means of the raw values (untouched by episodes and
    rebases): each weekday's mean against the weekly level (``_fold_day``); used once
    they explain at least half of the day-to-day spread."""
    today = math.floor(t / DAY_S)
    if today != w[W_DAY, sid]:
        n_days = w[W_DAY_N, sid]
        if n_days > 0.0:
            d = int(w[W_DAY, sid] + 3) % WEEKDAYS
            dev = w[W_DAY_SUM, sid] / n_days - w[W_WMEAN, sid]
            if w[W_RD, sid] > 0.0 or w[W_RW, sid] > 0.0:
                w[W_RW, sid] += (abs(dev - pw[d, sid]) - w[W_RW, sid]) / 7.0
                w[W_RD, sid] += (abs(dev) - w[W_RD, sid]) / 7.0
            else:
                w[W_RW, sid] = w[W_RD, sid] = abs(dev) + 1e-300
            _fold_day(w, pw, sid, d, dev, first_t)
            if today - first_t / DAY_S >= 14.0:
                w[W_WEEK, sid] = 1.0 if w[W_RW, sid] < 0.5 * w[W_RD, sid] else 0.0
        elif w[W_DAY, sid] == 0.0:
            w[W_WMEAN, sid] = v
        w[W_DAY, sid] = today
        w[W_DAY_SUM, sid] = 0.0
        w[W_DAY_N, sid] = 0.0
    w[W_DAY_SUM, sid] += v
    w[W_DAY_N, sid] += 1.0


@_jit
def _fold_day(w: A, pw: A, sid: int, d: int, dev: float, first_t: float) -> None:
    """Fold one finished day (weekday ``d``, its mean ``dev`` off the level) into the
    offsets and the level. Each offset is the mean of the weeks seen so far, then
    weighs each new week 1/2: two weeks give every weekday an unbiased estimate."""
    weeks = math.floor((w[W_DAY, sid] - math.floor(first_t / DAY_S)) / WEEKDAYS) + 1.0
    pw[d, sid] += max(1.0 / weeks, 0.5) * (dev - pw[d, sid])
    w[W_WMEAN, sid] += (dev - pw[d, sid]) / WEEKDAYS  # the day less its offset
    m = 0.0
    for j in range(WEEKDAYS):
        m += pw[j, sid] / WEEKDAYS
    for j in range(WEEKDAYS):
        pw[j, sid] -= m
    w[W_WMEAN, sid] += m


@_jit
def offset_step(pw: A, sid: int, t0: float, t: float) -> float:
    """How much the weekday offset changes from time ``t0`` to ``t`` (0 on the same
    weekday). A baseline without the daily profile moves by it where the day turns, so
    a weekend's start is expected, not a level shift."""
    d0, d1 = weekday_of(t0), weekday_of(t)
    return float(pw[d1, sid] - pw[d0, sid]) if d0 != d1 else 0.0
