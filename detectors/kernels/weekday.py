"""Weekday offsets of the generic series detector: each weekday's mean against the
mean of day means, used once they explain the day-to-day spread (detected, not assumed).

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
def weekday_step(w: A, pw: A, sid: int, t: float, v: float, first_t: float) -> None:
    """Weekday offsets from day means of the raw values (untouched by episodes and
    rebases): each weekday's mean minus the running mean of day means, folded in with
    weight 1/2 per week; used once they explain at least half of the day-to-day spread."""
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
            pw[d, sid] += 0.5 * (dev - pw[d, sid])
            w[W_WMEAN, sid] += dev / 7.0
            if today - first_t / DAY_S >= 14.0:
                w[W_WEEK, sid] = 1.0 if w[W_RW, sid] < 0.5 * w[W_RD, sid] else 0.0
        elif w[W_DAY, sid] == 0.0:
            w[W_WMEAN, sid] = v
        w[W_DAY, sid] = today
        w[W_DAY_SUM, sid] = 0.0
        w[W_DAY_N, sid] = 0.0
    w[W_DAY_SUM, sid] += v
    w[W_DAY_N, sid] += 1.0
