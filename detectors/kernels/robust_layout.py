"""The generic series detector's per-series state layout: the scalar columns (``S_*``),
the tails (``TAIL_*``, ``TAIL_COLUMNS`` rows each in one array), which statistic a
score came from (``WHY_*``) and the constants the per-row step and its learning share
(``detectors.kernels.robust_series``, ``detectors.kernels.robust_learn``)."""

from __future__ import annotations

import math

from detectors.kernels._base import A, _jit
from detectors.kernels.tail import TAIL_COLUMNS
from detectors.kernels.weekday import DAY_S, W_RD

(
    S_N,
    S_LAST_T,
    S_DT,
    S_FIRST_T,
    S_LVL,
    S_SC,
    S_RA,
    S_RS,
    S_SEAS,
    S_WIN,
    S_MAG,
    S_EP_LEN,
    S_EP_QUIET,
    S_EP_PEAK,
    S_EP_RA,
    S_EP_RS,
    S_EP_MOVED,
    S_BUDGET,
    S_SLOW,
    S_WIN_S,
    S_EPC,
    S_EP_REBASED,
    S_DENS,
    S_WEEK,
    S_RW,
    S_DAY,
    S_DAY_SUM,
    S_DAY_N,
    S_WMEAN,
    S_RD,
    S_HI,
    S_LO,
    S_ENV_MODE,
    S_RUN_A,
    S_ALT_A,
    S_ALT_S,
    S_ALT_T,
    S_PREV,
    S_RES,
    S_LATTICE,
    S_LOWEST,
    S_SAME,
    S_REP,
    S_RUN_F,
    S_NN_N,
    S_NN_RUN,
    S_HIGHEST,
    S_ON_UA,
    S_ON_US,
    S_ON_EN,
    S_ON_NOV,
    S_WK_RES,
    S_WK_DAILY,
    S_WK_ON,
    S_WK_T0,
) = range(55)
SERIES_COLUMNS = 55
assert S_RD - S_WEEK == W_RD  # weekday_step takes S_WEEK..S_RD as its W_* rows
# Tail estimates per series, TAIL_COLUMNS rows each in one array: non-seasonal point and
# window, seasonal point and window, the drift of the level from its slow average, burst
# density, novelty beyond the residual envelope, runs of repeats (detectors.kernels.flat)
# and the distance to the nearest recent value (detectors.kernels.nearest).
TAILS = 9
TAIL_A, TAIL_AW, TAIL_S, TAIL_SW, TAIL_D, TAIL_DN, TAIL_NV, TAIL_FL, TAIL_NN = range(TAILS)
WEEK_S = 7 * DAY_S
SD_PER_MAD = 1.2533  # sd / mean absolute deviation for a normal distribution
RETURN_SCALES = 3.0  # a return lands within this many scales of the old level
# A series is young from this share of its warm-up (and a day) until the warm-up ends:
# only values far beyond its range page (``robust_channels.young_channel``).
YOUNG_FROM = 0.25
# Which statistic a row's score came from: the value itself, the recent window's mean,
# the level's drift from its slow average, the density of outliers, novelty, a value
# stuck for longer than the series' runs of repeats, a value far from every recent one,
# a young series' value far beyond every value it took.
WHY_POINT, WHY_WINDOW, WHY_DRIFT, WHY_DENSITY, WHY_NOVEL, WHY_FLAT, WHY_NEAR, WHY_YOUNG = (
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0,
)  # fmt: skip
# A series moves in steps when at least this share of its changes (a moving average over
# about 1 / LATTICE_A changes) are whole numbers of its smallest change.
LATTICE_A, LATTICE_MIN = 0.02, 0.9


@_jit
def tail_of(tails: A, which: int) -> A:
    """One tail's ``TAIL_COLUMNS`` rows of the tails array (``which``: a ``TAIL_*``), a view."""
    return tails[which * TAIL_COLUMNS : (which + 1) * TAIL_COLUMNS]


@_jit
def profile_at(t: float, k: int) -> tuple[int, int, float]:
    """The two daily-profile slots (of ``k``) around time ``t`` and the second's weight:
    slots are read and learned with linear interpolation between their centres."""
    phase = (t % DAY_S) / DAY_S * k - 0.5
    lo = math.floor(phase)
    f = phase - lo
    return int(lo) % k, (int(lo) + 1) % k, f
