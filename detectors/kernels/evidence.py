"""The feedback detector's quality join: one CUSUM of log-likelihood ratios per model
version, fed by ratings and by the version's requests (refusals, truncations).

Row by row in event time, so the result does not depend on how rows are batched. The
plain-Python reference is ``ref_quality`` in tests/detectors/test_feedback_join.py.
"""

from __future__ import annotations

import math

import numpy as np

from detectors.budget import run_length_threshold
from detectors.kernels._base import A, _jit

WEEK_S = 7 * 86400.0
# Indices into the ``params`` array (see ``quality_update``).
TILT, SLOW_ALPHA, DECLINED, WARMUP, MARGIN = 0, 1, 2, 3, 4
RATE_ALPHA, RATE_RATIO, RATE_WARMUP, RATE_MARGIN, MIN_H = 5, 6, 7, 8, 9
N_PARAMS = 10


@_jit
def bernoulli_llr(p: float, n: float, alpha: float, ratio: float, margin: float) -> A:
    """(llr of a 1, llr of a 0) for "the rate is ``ratio`` x its baseline" against "it
    is its baseline". The baseline is the learned rate ``p`` over ``n`` rows (with half
    an event of prior, so a rate never seen is not 0), raised by ``margin`` standard
    errors: a baseline learned in a lucky spell must not make ordinary rows evidence.
    ``p0 exp(l1) + (1 - p0) exp(l0) == 1``: a likelihood ratio at the baseline."""
    ph = (p * n + 0.5) / (n + 1.0)
    n_eff = max(min(n, (2.0 - alpha) / alpha), 1.0)
    p0 = min(ph + margin * math.sqrt(ph * (1.0 - ph) / n_eff), 0.9)
    p1 = min(ratio * p0, 0.99)
    out = np.empty(2, dtype=np.float64)
    out[0] = math.log(p1 / p0)
    out[1] = math.log((1.0 - p1) / (1.0 - p0))
    return out


@_jit
def _rating_llr(x: float, mgf: float, mgf2: float, n: float, prm: A) -> float:
    # -tilt x - log E0[exp(-tilt x)], less MARGIN standard errors of that log (delta
    # method) so a baseline learned from a lucky spell of good ratings is discounted.
    a = prm[SLOW_ALPHA]
    n_eff = max(min(n, (2.0 - a) / a), 1.0)
    rel_var = max(mgf2 / max(mgf * mgf, 1e-300) - 1.0, 0.0)
    margin = prm[MARGIN] * math.sqrt(rel_var / n_eff)
    return float(-prm[TILT] * x - math.log(max(mgf, 1e-300)) - margin)


@_jit
def _threshold(ev_n: float, ev_t0: float, t: float, budget: float, min_h: float) -> float:
    # log of the observations the series makes per budgeted false alert: the CUSUM's
    # in-control run length is at least exp(h) observations (Lorden).
    span = max(t - ev_t0, 60.0) if math.isfinite(ev_t0) else 60.0
    rate = max(ev_n / span, 1e-6)
    return run_length_threshold(rate * WEEK_S, budget, min_h)


@_jit
def quality_update(
    ids: A,
    ts: A,
    sig: A,
    budget: A,
    rating: A,
    rate_p: A,
    rate_n: A,
    s: A,
    run: A,
    ev_n: A,
    ev_t0: A,
    prm: A,
) -> tuple[A, A]:
    """Rows in event time; ``sig[i]`` = (rating, refusal, truncation), NaN where absent.
    Per series: ``rating[sid]`` = (mean, E[exp(-tilt x)], E[exp(-2 tilt x)], count);
    ``rate_p/rate_n[sid, k]`` the refusal (k=0) and truncation (k=1) rates and counts;
    ``s`` the CUSUM (capped at 1.5 h); ``run[sid, j]`` (sum, count) of signal j since
    ``s`` last stood at 0 (signals judged only); ``ev_n``/``ev_t0`` the observations
    judged and the time of the first, whose rate sets ``h`` (with ``budget``, alerts
    per week).
    A row adds the llr of every signal it carries whose baseline is warm, then teaches
    the baselines (slowly, x DECLINED, while ``s >= h / 2``). Returns (s, h) per row."""
    n = ids.shape[0]
    s_out = np.empty(n, dtype=np.float64)
    h_out = np.empty(n, dtype=np.float64)
    used = np.zeros(3, dtype=np.bool_)
    for i in range(n):
        sid = ids[i]
        t = ts[i]
        step = 0.0
        x = sig[i, 0]
        used[0] = math.isfinite(x) and rating[sid, 3] >= prm[WARMUP]
        if used[0]:
            step += _rating_llr(x, rating[sid, 1], rating[sid, 2], rating[sid, 3], prm)
        for r in range(2):
            y = sig[i, r + 1]
            used[r + 1] = math.isfinite(y) and rate_n[sid, r] >= prm[RATE_WARMUP]
            if used[r + 1]:
                ll = bernoulli_llr(
                    rate_p[sid, r],
                    rate_n[sid, r],
                    prm[RATE_ALPHA],
                    prm[RATE_RATIO],
                    prm[RATE_MARGIN],
                )
                step += ll[0] if y > 0.5 else ll[1]
        judged = used[0] or used[1] or used[2]
        if judged:
            ev_n[sid] += 1.0
            if not math.isfinite(ev_t0[sid]) or t < ev_t0[sid]:
                ev_t0[sid] = t
        h = _threshold(ev_n[sid], ev_t0[sid], t, budget[sid], prm[MIN_H])
        if judged:
            v = s[sid] + step
            if v <= 0.0:
                s[sid] = 0.0
                run[sid, :, :] = 0.0
            else:
                s[sid] = min(v, 1.5 * h)
                for j in range(3):
                    if used[j]:
                        run[sid, j, 0] += sig[i, j]
                        run[sid, j, 1] += 1.0
        slow = prm[DECLINED] if s[sid] >= h / 2.0 else 1.0
        if math.isfinite(x):
            a = max(prm[SLOW_ALPHA], 1.0 / (rating[sid, 3] + 1.0)) * slow
            e = math.exp(-prm[TILT] * x)
            rating[sid, 0] += a * (x - rating[sid, 0])
            rating[sid, 1] += a * (e - rating[sid, 1])
            rating[sid, 2] += a * (e * e - rating[sid, 2])
            rating[sid, 3] += 1.0
        for r in range(2):
            y = sig[i, r + 1]
            if math.isfinite(y):
                a = max(prm[RATE_ALPHA], 1.0 / (rate_n[sid, r] + 1.0)) * slow
                rate_p[sid, r] += a * (y - rate_p[sid, r])
                rate_n[sid, r] += 1.0
        s_out[i] = s[sid]
        h_out[i] = h
    return s_out, h_out
