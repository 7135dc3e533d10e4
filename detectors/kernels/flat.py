"""A series stuck on one value: the run of exact repeats, scored against its own runs.

A scraped value that stops changing is one of the commonest failures a metric shows
(a hung exporter repeating its last sample, a frozen gauge, a counter that stopped)
and none of the size statistics sees it: every repeat sits at or near the expected
value. The statistic here is the current run length ``k``: how many rows in a row
have repeated the row before exactly (0 on a row that changed).

What is learned counts runs, not rows: the rate runs end at, and each run once, by
its full length, when it ends (the length's tail keeps its threshold at 0, as
``tail_learn_at_zero``'s does). So a reading is the chance per row of a run starting
here that lasts ``k`` rows, which is what an alert budget counts: an idle disk's long
runs of zeros are learned as usual, and only a run longer than the series' own is
rare (``flat_logp`` has the readings). The detector learns none of it inside an
episode: a value stuck for long is not the series' new normal however long it lasts.
"""

from __future__ import annotations

import math

from detectors.kernels._base import A, _jit
from detectors.kernels.tail import (
    PRIOR_PEAKS,
    T_M1,
    T_N,
    T_RATE,
    T_SPREAD,
    tail_learn_at_zero,
    tail_logp,
)

# Only a series that changes on at least 95% of its rows is watched for a stuck value.
# Where repeats are common (counts, an idle disk's zeros, a percentage rounded to whole
# numbers) a long run is far more often the series' normal than a fault, and the alert
# budget would be spent on its lulls.
FLAT_REP_MAX = 0.05


@_jit
def flat_run(prev: float, v: float, run: float) -> float:
    """The run of exact repeats after ``v`` (``prev``: the row before; NaN: unknown)."""
    return run + 1.0 if v == prev else 0.0


@_jit
def flat_logp(k: float, p_rep: float, tail: A, sid: int, min_n: float, peak_a: float) -> float:
    """log P(a run of repeats reaches ``k`` rows), per row: the least rare of three
    readings, since each is wrong somewhere on its own. ``k`` independent repeats at
    the share of rows that repeat (wrong where repeats cluster, as an idle disk's zeros
    do; right on a series that was always one value, where nothing is rare). A run
    starting at the rate runs start and going on ``k - 1`` times at the share of its
    runs' rows that went on (memoryless, Laplace-smoothed: on a series that never
    repeated, a few equal values in a row are rare, one is not). And, once enough runs
    have ended to fit its shape, their tail (run lengths heavier than memoryless). 0 for
    ``k`` = 0 and until the tail has learned ``min_n`` rows (a series restored from a
    snapshot that did not keep runs learns them again before it is judged on them)."""
    n = float(tail[T_N, sid])
    if k <= 0.0 or n < min_n:
        return 0.0
    floor = 1.0 / (n + 2.0)
    lp = k * math.log(max(min(p_rep, 1.0), floor))
    runs = min(float(tail[T_SPREAD, sid]), 1.0 / peak_a)  # effective: the moments forget
    length = float(tail[T_M1, sid])
    go_on = (runs * max(length - 1.0, 0.0) + 1.0) / (runs * length + 2.0)
    lp = max(
        lp, math.log(max(min(float(tail[T_RATE, sid]), 1.0), floor)) + (k - 1.0) * math.log(go_on)
    )
    if tail[T_SPREAD, sid] >= PRIOR_PEAKS:
        lp = max(lp, tail_logp(k, tail, sid))
    return lp


@_jit
def flat_learn(
    k: float, prev_k: float, p_rep: float, tail: A, sid: int, rate_a: float, peak_a: float
) -> float:
    """Learn one row's run length ``k`` (``prev_k``: the row before's): the share of rows
    that repeat (returned), and, as a zero-threshold tail (``tail_learn_at_zero``), the
    rate runs end at and their lengths, each learned on the row a run ends."""
    a = max(1.0 / (float(tail[T_N, sid]) + 1.0), rate_a)
    p_rep += a * ((1.0 if k > 0.0 else 0.0) - p_rep)
    ended = prev_k if k <= 0.0 and prev_k > 0.0 else 0.0
    tail_learn_at_zero(ended, tail, sid, rate_a, peak_a)
    return p_rep
