"""Streaming peaks-over-threshold (SPOT-style) tail estimates for alert budgets.

After Siffer et al., "Anomaly Detection in Streams with Extreme Value Theory"
(KDD 2017): the excesses of a statistic over a high quantile ``t`` follow a
generalised Pareto distribution (Pickands-Balkema-de Haan), so the probability of
any larger value is ``rate * GPD_survival(u - t)``, extrapolated far beyond what
the data has shown. Here everything is streaming and bounded: ``t`` is a
stochastic-approximation quantile, ``rate`` an exponentially weighted exceedance
rate, and the GPD is fitted by the method of moments on exponentially weighted
moments of the excesses, so each series costs ``TAIL_COLUMNS`` floats.

State per series (one row of a ``(TAIL_COLUMNS, n_series)`` array, see ``T_*``):
the threshold, exceedance rate, first and second moments of the excesses, the
spread used as the quantile step, and the number of values learned.
"""

from __future__ import annotations

import math

import numpy as np

from detectors.kernels._base import A, _jit

T_THRESH, T_RATE, T_M1, T_M2, T_SPREAD, T_N = range(6)
TAIL_COLUMNS = 6
LOGP_FLOOR = -700.0  # log of the smallest probability reported (beyond a finite endpoint)
# gamma >= 0: never assume a finite endpoint from a few peaks (a light tail fitted on
# little data puts it too close, and everything past it would page).
GAMMA_MIN, GAMMA_MAX = 0.0, 0.45
# A shape fitted on few peaks is mostly noise, and a light tail fitted on a handful of
# small peaks makes the next moderate value look impossibly rare. The fitted shape is
# shrunk toward the heaviest (GAMMA_MAX) with the weight of this many peaks.
PRIOR_PEAKS = 10.0
# The threshold's step, as a share of the spread: QUANTILE_GAIN while a tail is young (so
# a threshold that starts at the first value finds the quantile fast), then falling as
# QUANTILE_SETTLE / n to QUANTILE_GAIN_FLOOR (Robbins-Monro, with a floor so it still
# tracks). The statistics are already scaled by a fast robust scale, so their quantile
# moves little; a large step would only let a sustained, moderate anomaly (half a day
# a few scales off its daily profile, under the alert on each row) raise the threshold
# under itself within a few rows and never page. Run-declustered tails do not need it
# (a run raises them once) and keep the full step.
QUANTILE_GAIN, QUANTILE_SETTLE, QUANTILE_GAIN_FLOOR = 0.3, 400.0, 0.05
MIN_EVENTS_AT_ZERO = 3.0  # positive values a zero-threshold tail needs before sizes count


@_jit
def tail_peaks(st: A, sid: int) -> float:
    """How many excesses (peaks) a tail has seen: values learned times its rate."""
    return float(st[T_N, sid]) * min(float(st[T_RATE, sid]), 1.0)


@_jit
def never_moved(st: A, sid: int) -> bool:
    """Whether a tail has never seen an excess (no mean excess learned)."""
    return bool(st[T_M1, sid] <= 1e-12)


@_jit
def tail_shape(st: A, sid: int) -> tuple[float, float]:
    """The GPD shape and scale (gamma, sigma) of one series' excesses: method of moments,
    shrunk toward a heavy tail while the peaks seen (``n * rate``) are few."""
    m1, m2 = float(st[T_M1, sid]), float(st[T_M2, sid])
    var = m2 - m1 * m1
    gamma = 0.5 * (1.0 - m1 * m1 / var) if var > 1e-12 * m1 * m1 else 0.0
    gamma = min(max(gamma, GAMMA_MIN), GAMMA_MAX)
    peaks = tail_peaks(st, sid)
    gamma = (peaks * gamma + PRIOR_PEAKS * GAMMA_MAX) / (peaks + PRIOR_PEAKS)
    return gamma, m1 * (1.0 - gamma)  # the GPD's mean excess is sigma / (1 - gamma)


@_jit
def tail_logp(u: float, st: A, sid: int) -> float:
    """log P(U >= u) for one series: GPD tail beyond the threshold, and a log-linear
    ramp from 0 (at u = 0) to log(rate) (at the threshold) below it."""
    t, rate = st[T_THRESH, sid], st[T_RATE, sid]
    if u != u or st[T_N, sid] < 1.0 or rate <= 0.0:
        return 0.0
    log_rate = math.log(min(float(rate), 1.0))
    if u <= t:
        if t <= 0.0:  # at or below a threshold of zero: nothing unusual at all
            return 0.0
        return log_rate * max(u, 0.0) / float(t)
    y = u - t
    if never_moved(st, sid):
        return LOGP_FLOOR  # the tail has never moved: anything beyond it is new
    gamma, sigma = tail_shape(st, sid)
    if abs(gamma) < 1e-6:
        ls = -y / sigma
    else:
        arg = 1.0 + gamma * y / sigma
        if arg <= 0.0:
            return LOGP_FLOOR
        ls = -math.log(arg) / gamma
    return float(max(log_rate + ls, LOGP_FLOOR))


@_jit
def _learn_excess(st: A, sid: int, y: float, n: float, tail_p: float, peak_alpha: float) -> None:
    """Fold one excess into the moments the generalised Pareto is fitted from."""
    b = max(1.0 / (n * tail_p + 1.0), peak_alpha)
    st[T_M1, sid] += b * (y - st[T_M1, sid])
    st[T_M2, sid] += b * (y * y - st[T_M2, sid])


@_jit
def _quantile_step(st: A, sid: int, settling: bool) -> float:
    """The threshold's full step: a share (see ``QUANTILE_GAIN``; falling with the values
    learned where ``settling``) of the spread, or of the mean excess."""
    gain = QUANTILE_GAIN
    n = float(st[T_N, sid])
    if settling and n > QUANTILE_SETTLE:
        # Settled tails (nearly all, in a long-running service) skip the division.
        settled = n * QUANTILE_GAIN_FLOOR >= QUANTILE_SETTLE * QUANTILE_GAIN
        gain = QUANTILE_GAIN_FLOOR if settled else QUANTILE_GAIN * QUANTILE_SETTLE / n
    return float(gain * max(st[T_SPREAD, sid], st[T_M1, sid]))


@_jit
def tail_learn(
    u: float, st: A, sid: int, tail_p: float, rate_alpha: float, peak_alpha: float
) -> None:
    """Learn one value: move the threshold toward the (1 - tail_p) quantile, update the
    exceedance rate and, for an excess, its moments."""
    if u != u:
        return
    n = st[T_N, sid]
    if n < 1.0:
        st[T_THRESH, sid] = u
        st[T_RATE, sid] = tail_p
        st[T_SPREAD, sid] = 0.0
        st[T_N, sid] = 1.0
        return
    t = st[T_THRESH, sid]
    spread = st[T_SPREAD, sid]
    a = max(1.0 / (n + 1.0), rate_alpha)
    st[T_SPREAD, sid] = spread + a * (abs(u - t) - spread)
    above = u > t
    if above:
        _learn_excess(st, sid, u - t, n, tail_p, peak_alpha)
    st[T_RATE, sid] += a * ((1.0 if above else 0.0) - st[T_RATE, sid])
    # Stochastic-approximation quantile: balanced steps, up on an excess, down otherwise.
    step = _quantile_step(st, sid, True)
    if above:
        st[T_THRESH, sid] = t + step
    else:
        st[T_THRESH, sid] = t - step * tail_p / (1.0 - tail_p)
    st[T_N, sid] = n + 1.0


@_jit
def tail_learn_runs(
    u: float, st: A, sid: int, tail_p: float, rate_alpha: float, peak_alpha: float,
    run_max: float, settle: float, run_gain: float,
) -> float:  # fmt: skip
    """``tail_learn`` for a statistic whose exceedances come in runs (a moving average):
    declustered by runs, as extreme-value practice does for dependent series. A run of
    rows beyond the threshold counts once in the rate and gives the excesses one value,
    its largest excess, when it ends; so ``tail_logp`` is then the probability per row
    of a run starting beyond ``u``: an episode, which is what an alert budget counts.

    After ``settle`` values the threshold steps up a full step only where a run starts,
    and ``run_gain`` of one on every later row of the run. A statistic that builds up
    over many rows (a change still developing) so does not raise the threshold under
    itself, yet a threshold left under a lasting new level still climbs out. Before
    ``settle`` it is the plain quantile, so a threshold that starts under the bulk of
    the values (one long run from the first row) rises at once. ``run_max`` is the
    running run's largest excess so far (0 outside a run); the new one is returned."""
    if u != u:
        return run_max
    n = st[T_N, sid]
    if n < 1.0:
        tail_learn(u, st, sid, tail_p, rate_alpha, peak_alpha)
        return 0.0
    t = st[T_THRESH, sid]
    a = max(1.0 / (n + 1.0), rate_alpha)
    st[T_SPREAD, sid] += a * (abs(u - t) - st[T_SPREAD, sid])
    above = u > t
    start = above and run_max <= 0.0
    st[T_RATE, sid] += a * ((1.0 if start else 0.0) - st[T_RATE, sid])
    st[T_N, sid] = n + 1.0
    if above:
        y = u - t
        if start and st[T_M1, sid] <= 1e-12:  # no run has ended yet: its excess so far
            st[T_M1, sid], st[T_M2, sid] = y, y * y
        gain = 1.0 if start or n < settle else run_gain
        st[T_THRESH, sid] = t + gain * _quantile_step(st, sid, False)
        return float(max(run_max, y))
    if run_max > 0.0:  # a run ended: its peak is one excess
        _learn_excess(st, sid, run_max, n, tail_p, peak_alpha)
    st[T_THRESH, sid] = t - _quantile_step(st, sid, False) * tail_p / (1.0 - tail_p)
    return 0.0


@_jit
def tail_forget(st: A, sid: int) -> None:
    """Start a tail afresh: what it learned describes a statistic that no longer means
    the same (its reference changed)."""
    for c in range(TAIL_COLUMNS):
        st[c, sid] = 0.0


@_jit
def tail_soften(st: A, sid: int, n: float) -> None:
    """Weigh what a tail learned as at most ``n`` values: it keeps its estimate, as a
    prior that the next few hundred values outweigh (its statistic's reference changed,
    and a fresh tail would leave the statistic unscored while it learns)."""
    st[T_N, sid] = min(st[T_N, sid], n)


@_jit
def tail_learn_at_zero(u: float, st: A, sid: int, rate_alpha: float, peak_alpha: float) -> None:
    """Learn one value of a statistic that is 0 unless something happened (the threshold
    stays at 0): the rate of positive values and the moments of their sizes."""
    if u != u:
        return
    n = st[T_N, sid]
    a = max(1.0 / (n + 1.0), rate_alpha)
    above = u > 0.0
    st[T_RATE, sid] += a * ((1.0 if above else 0.0) - st[T_RATE, sid])
    if above:
        st[T_SPREAD, sid] += 1.0  # the number of positive values seen
        b = max(1.0 / st[T_SPREAD, sid], peak_alpha)
        st[T_M1, sid] += b * (u - st[T_M1, sid])
        st[T_M2, sid] += b * (u * u - st[T_M2, sid])
    st[T_N, sid] = n + 1.0


@_jit
def tail_u_at(logp: float, st: A, sid: int) -> float:
    """The statistic whose tail probability is ``exp(logp)`` (inverse of tail_logp beyond
    the threshold); the threshold itself when ``logp`` is not beyond it."""
    t, rate, m1 = float(st[T_THRESH, sid]), float(st[T_RATE, sid]), float(st[T_M1, sid])
    if rate <= 0.0 or m1 <= 1e-12:
        return t
    lr = math.log(min(rate, 1.0))
    if logp >= lr:
        return t
    g, sigma = tail_shape(st, sid)
    if abs(g) < 1e-6:
        return t + sigma * (lr - logp)
    return t + sigma / g * (math.exp(-g * (logp - lr)) - 1.0)


@_jit
def tail_u_at_zero(logp: float, st: A, sid: int) -> float:
    """Inverse of ``tail_logp_at_zero``: the size beyond which a positive value's tail
    probability is at most ``exp(logp)`` (0: any positive value is that rare), or
    infinity when no size is."""
    events = st[T_N, sid] * st[T_RATE, sid]
    if events >= MIN_EVENTS_AT_ZERO and st[T_M1, sid] > 0.0:
        return tail_u_at(logp, st, sid)
    first = math.log(max(float(st[T_RATE, sid]), 1.0 / (float(st[T_N, sid]) + 2.0)))
    return 0.0 if first <= logp else math.inf


@_jit
def tail_logp_at_zero(u: float, st: A, sid: int) -> float:
    """log P(U >= u) for a tail learned by ``tail_learn_at_zero``. Until a few positive
    values have given their sizes a scale, only how often values are positive counts,
    and never as less than one in those learned (rule of succession): a first event is
    not infinitely rare."""
    if u != u or u <= 0.0:
        return 0.0
    events = st[T_N, sid] * st[T_RATE, sid]
    if events >= MIN_EVENTS_AT_ZERO and st[T_M1, sid] > 0.0:
        return tail_logp(u, st, sid)
    return math.log(max(float(st[T_RATE, sid]), 1.0 / (float(st[T_N, sid]) + 2.0)))


@_jit
def tail_update(
    ids: A,
    u: A,
    learn: A,
    st: A,
    tail_p: float,
    rate_alpha: float,
    peak_alpha: float,
    min_n: float,
) -> A:
    """Per row: log P(U >= u) before learning (NaN while a series has fewer than
    ``min_n`` values), then learn the row where ``learn`` is true."""
    out = np.full(ids.size, np.nan)
    for i in range(ids.size):
        sid = ids[i]
        v = u[i]
        if v != v:
            continue
        if st[T_N, sid] >= min_n:
            out[i] = tail_logp(v, st, sid)
        if learn[i]:
            tail_learn(v, st, sid, tail_p, rate_alpha, peak_alpha)
    return out
