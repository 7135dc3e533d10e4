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


@_jit
def tail_logp(u: float, st: A, sid: int) -> float:
    """log P(U >= u) for one series: GPD tail beyond the threshold, and a log-linear
    ramp from 0 (at u = 0) to log(rate) (at the threshold) below it."""
    t, rate, m1, m2 = st[T_THRESH, sid], st[T_RATE, sid], st[T_M1, sid], st[T_M2, sid]
    if u != u or st[T_N, sid] < 1.0 or rate <= 0.0:
        return 0.0
    log_rate = math.log(min(float(rate), 1.0))
    if u <= t:
        if t <= 0.0:  # at or below a threshold of zero: nothing unusual at all
            return 0.0
        return log_rate * max(u, 0.0) / float(t)
    y = u - t
    if m1 <= 1e-12:
        return LOGP_FLOOR  # the tail has never moved: anything beyond it is new
    var = m2 - m1 * m1
    gamma = 0.0
    if var > 1e-12 * m1 * m1:
        gamma = 0.5 * (1.0 - m1 * m1 / var)
    gamma = min(max(gamma, GAMMA_MIN), GAMMA_MAX)
    sigma = m1 * (1.0 - gamma)  # the GPD's mean excess is sigma / (1 - gamma)
    if abs(gamma) < 1e-6:
        ls = -y / sigma
    else:
        arg = 1.0 + gamma * y / sigma
        if arg <= 0.0:
            return LOGP_FLOOR
        ls = -math.log(arg) / gamma
    return float(max(log_rate + ls, LOGP_FLOOR))


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
        y = u - t
        b = max(1.0 / (n * tail_p + 1.0), peak_alpha)
        st[T_M1, sid] += b * (y - st[T_M1, sid])
        st[T_M2, sid] += b * (y * y - st[T_M2, sid])
    st[T_RATE, sid] += a * ((1.0 if above else 0.0) - st[T_RATE, sid])
    # Stochastic-approximation quantile: balanced steps, up on an excess, down otherwise.
    step = 0.3 * max(st[T_SPREAD, sid], st[T_M1, sid])
    if above:
        st[T_THRESH, sid] = t + step
    else:
        st[T_THRESH, sid] = t - step * tail_p / (1.0 - tail_p)
    st[T_N, sid] = n + 1.0


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
