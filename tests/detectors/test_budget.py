"""Alert budgets: the streaming tail kernel against a plain-Python reference, its
calibration on heavy and light tails, and the config/score helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.budget import BudgetedConfig, TailBank, budget_score, row_log_q
from detectors.kernels.tail import (
    GAMMA_MAX,
    GAMMA_MIN,
    LOGP_FLOOR,
    PRIOR_PEAKS,
    QUANTILE_GAIN,
    QUANTILE_GAIN_FLOOR,
    QUANTILE_SETTLE,
    TAIL_COLUMNS,
    tail_learn_at_zero,
    tail_learn_runs,
    tail_logp,
    tail_logp_at_zero,
    tail_u_at,
    tail_u_at_zero,
    tail_update,
)

TP, RA, PA, MIN_N = 0.02, 1 / 5000, 1 / 200, 50.0


def ref_logp(u: float, s: list[float]) -> float:
    t, rate, m1, m2, _, n = s
    if n < 1 or rate <= 0:
        return 0.0
    lr = math.log(min(rate, 1.0))
    if u <= t:
        return 0.0 if t <= 0 else lr * max(u, 0.0) / t
    if m1 <= 1e-12:
        return LOGP_FLOOR
    var = m2 - m1 * m1
    g = 0.5 * (1 - m1 * m1 / var) if var > 1e-12 * m1 * m1 else 0.0
    g = min(max(g, GAMMA_MIN), GAMMA_MAX)
    peaks = n * min(rate, 1.0)  # few peaks: the shape leans toward the heaviest
    g = (peaks * g + PRIOR_PEAKS * GAMMA_MAX) / (peaks + PRIOR_PEAKS)
    sigma = m1 * (1 - g)
    y = u - t
    if abs(g) < 1e-6:
        ls = -y / sigma
    else:
        arg = 1 + g * y / sigma
        if arg <= 0:
            return LOGP_FLOOR
        ls = -math.log(arg) / g
    return max(lr + ls, LOGP_FLOOR)


def ref_learn(u: float, s: list[float]) -> None:
    t, rate, m1, m2, spread, n = s
    if n < 1:
        s[:] = [u, TP, 0.0, 0.0, 0.0, 1.0]
        return
    a = max(1 / (n + 1), RA)
    spread += a * (abs(u - t) - spread)
    above = u > t
    if above:
        b = max(1 / (n * TP + 1), PA)
        m1 += b * ((u - t) - m1)
        m2 += b * ((u - t) ** 2 - m2)
    rate += a * ((1.0 if above else 0.0) - rate)
    gain = max(QUANTILE_GAIN * min(1.0, QUANTILE_SETTLE / n), QUANTILE_GAIN_FLOOR)
    step = gain * max(spread, m1)
    t = t + step if above else t - step * TP / (1 - TP)
    s[:] = [t, rate, m1, m2, spread, n + 1]


def test_kernel_matches_plain_python_reference() -> None:
    rng = np.random.default_rng(4)
    u = np.abs(rng.standard_t(3, 3000))
    ids = rng.integers(0, 3, u.size)
    learn = rng.random(u.size) < 0.9
    st = np.zeros((TAIL_COLUMNS, 3))
    got = tail_update(ids, u, learn, st, TP, RA, PA, MIN_N)
    states = [[0.0] * 6 for _ in range(3)]
    for i in range(u.size):
        s = states[ids[i]]
        want = ref_logp(u[i], s) if s[5] >= MIN_N else math.nan
        if math.isnan(want):
            assert math.isnan(got[i])
        else:
            assert got[i] == pytest.approx(want, rel=1e-9, abs=1e-9)
        if learn[i]:
            ref_learn(u[i], s)
    np.testing.assert_allclose(st, np.array(states).T, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_a_settled_threshold_is_not_raised_by_a_few_rows_of_one_rare_value(seed: int) -> None:
    # Ten rows at a value one in 10,000 rows reaches (a sustained anomaly still under the
    # alert on each row) are learned: the value must stay rare. With the young tail's
    # full quantile step the threshold climbed three spreads and called it one in 40.
    rng = np.random.default_rng(seed)
    u = np.log1p(np.abs(rng.standard_t(3, 20_000)))
    st = np.zeros((TAIL_COLUMNS, 1))
    tail_update(np.zeros(u.size, dtype=np.int64), u, np.ones(u.size, bool), st, TP, RA, PA, MIN_N)
    v = tail_u_at(math.log(1e-4), st, 0)
    assert tail_logp(v, st, 0) == pytest.approx(math.log(1e-4), rel=1e-6)
    one = np.zeros(1, dtype=np.int64)
    for _ in range(10):
        tail_update(one, np.array([v]), np.ones(1, bool), st, TP, RA, PA, MIN_N)
    assert tail_logp(v, st, 0) < math.log(2e-3)


def ref_learn_at_zero(u: float, s: list[float]) -> None:
    t, rate, m1, m2, count, n = s
    rate += max(1 / (n + 1), RA) * ((1.0 if u > 0 else 0.0) - rate)
    if u > 0:
        count += 1
        b = max(1 / count, PA)
        m1 += b * (u - m1)
        m2 += b * (u * u - m2)
    s[:] = [t, rate, m1, m2, count, n + 1]


def test_zero_threshold_tail_matches_plain_python_reference() -> None:
    # A statistic that is 0 unless something happened (novelty beyond an envelope): the
    # threshold stays at 0, the rate counts positive values, the moments their sizes.
    rng = np.random.default_rng(8)
    u = np.where(rng.random(4000) < 0.03, rng.exponential(0.2, 4000), 0.0)
    st = np.zeros((TAIL_COLUMNS, 1))
    ref = [0.0] * 6
    for v in u:
        if ref[5] >= MIN_N:
            want = ref_logp(float(v), ref)
            assert tail_logp(float(v), st, 0) == pytest.approx(want, rel=1e-9, abs=1e-9)
        tail_learn_at_zero(float(v), st, 0, RA, PA)
        ref_learn_at_zero(float(v), ref)
    np.testing.assert_allclose(st[:, 0], ref, rtol=1e-9, atol=1e-12)
    assert tail_logp(0.0, st, 0) == 0.0  # nothing happened: nothing unusual
    assert tail_logp(5.0, st, 0) < math.log(1e-4)  # 25 mean sizes out: very rare


@pytest.mark.parametrize("events", [0, 1, 2, 3, 40, 400])
def test_zero_threshold_tail_inverse_is_where_values_become_that_rare(events: int) -> None:
    # tail_u_at_zero states where a positive value gets at least as rare as exp(logp):
    # just past it the tail probability is at most that, just before it more (or, when
    # it says no size is that rare, none is). Few events: only the rate counts.
    rng = np.random.default_rng(events)
    st = np.zeros((TAIL_COLUMNS, 1))
    for v in rng.permutation(np.r_[rng.exponential(0.2, events), np.zeros(2000)]):
        tail_learn_at_zero(float(v), st, 0, RA, PA)
    for logp in (-2.0, -6.0, -9.0, -14.0):
        u = tail_u_at_zero(logp, st, 0)
        if u == math.inf:
            assert tail_logp_at_zero(1e6, st, 0) > logp
            continue
        assert tail_logp_at_zero(u + 1e-9 + 1e-6 * u, st, 0) <= logp + 1e-6
        if u > 0.0:
            assert tail_logp_at_zero(u * (1 - 1e-6), st, 0) > logp


def ref_learn_runs(u: float, s: list[float], run_max: float, settle: float, gain: float) -> float:
    t, rate, m1, m2, spread, n = s
    if n < 1:
        ref_learn(u, s)
        return 0.0
    a = max(1 / (n + 1), RA)
    spread += a * (abs(u - t) - spread)
    above = u > t
    start = above and run_max <= 0
    rate += a * ((1.0 if start else 0.0) - rate)
    if above:
        if start and m1 <= 1e-12:
            m1, m2 = u - t, (u - t) ** 2
        step = 0.3 * max(spread, m1) * (1.0 if start or n < settle else gain)
        s[:] = [t + step, rate, m1, m2, spread, n + 1]
        return max(run_max, u - t)
    if run_max > 0:  # a run ended: its peak is one excess
        b = max(1 / (n * TP + 1), PA)
        m1 += b * (run_max - m1)
        m2 += b * (run_max**2 - m2)
    step = 0.3 * max(spread, m1)
    s[:] = [t - step * TP / (1 - TP), rate, m1, m2, spread, n + 1]
    return 0.0


def _moving_mean(n: int, alpha: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.abs(rng.standard_t(4, n))
    out = np.empty(n)
    m = 0.0
    for i, v in enumerate(x):
        m += alpha * (v - m)
        out[i] = m
    return out


def test_run_declustered_tail_matches_plain_python_reference() -> None:
    u = _moving_mean(6000, 0.1, 5)
    st = np.zeros((TAIL_COLUMNS, 1))
    ref = [0.0] * 6
    run = ref_run = 0.0
    for v in u:
        run = tail_learn_runs(float(v), st, 0, TP, RA, PA, run, 400.0, 0.02)
        ref_run = ref_learn_runs(float(v), ref, ref_run, 400.0, 0.02)
        assert run == pytest.approx(ref_run, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(st[:, 0], ref, rtol=1e-9, atol=1e-12)


def test_runs_count_once_and_a_lasting_new_level_is_climbed_out_of() -> None:
    # A moving mean crosses a high level in runs of rows. The declustered tail's rate
    # counts runs: at its threshold, rows beyond are several times the runs starting,
    # and that threshold is below the plain tail's (2% of runs vs 2% of rows).
    u = _moving_mean(40_000, 0.1, 6)
    rows, runs = np.zeros((TAIL_COLUMNS, 1)), np.zeros((TAIL_COLUMNS, 1))
    run = 0.0
    one = np.zeros(1, dtype=np.int64)
    for v in u:
        tail_update(one, np.array([v]), np.ones(1, bool), rows, TP, RA, PA, MIN_N)
        run = tail_learn_runs(float(v), runs, 0, TP, RA, PA, run, 400.0, TP / (1 - TP))
    thr, rate = runs[0, 0], runs[1, 0]  # T_THRESH, T_RATE
    assert thr < rows[0, 0]
    assert float(np.mean(u[-10_000:] > thr)) > 2.0 * rate
    # The statistic moves up for good: one run, at first; the threshold still climbs
    # past the new level (a run's later rows step up), so the run ends and the rate of
    # runs comes back instead of decaying toward 0 under a stuck threshold.
    level = float(np.quantile(u, 0.999)) * 2.0
    ends = 0
    for _ in range(20_000):
        before = run
        run = tail_learn_runs(level, runs, 0, TP, RA, PA, run, 400.0, TP / (1 - TP))
        ends += before > 0.0 and run == 0.0
    assert runs[0, 0] > level * 0.95  # T_THRESH reached the new level
    assert ends > 0


def test_few_peaks_make_a_heavier_tail_than_many() -> None:
    # The same moments from 12 peaks and from 1,200: the few-peak tail must call a far
    # value less rare (its shape is shrunk toward the heaviest), so a handful of small
    # early peaks cannot make the next moderate value page.
    few = np.array([[1.0], [0.01], [0.1], [0.01 + 0.1**2], [0.0], [1200.0]])
    many = few.copy()
    many[5, 0] = 120_000.0
    u = 1.0 + 10 * 0.1
    assert tail_logp(u, few, 0) > tail_logp(u, many, 0) + 1.0


@pytest.mark.parametrize("dist", ["normal", "student_t3", "lognormal"])
def test_tail_probabilities_are_calibrated_near_the_budget(dist: str) -> None:
    rng = np.random.default_rng(1)
    n = 200_000
    x = {
        "normal": rng.normal(size=n),
        "student_t3": rng.standard_t(3, n),
        "lognormal": rng.lognormal(0, 1.5, n),
    }[dist]
    bank = TailBank(1, min_n=400)
    lp = bank.update(np.zeros(n, dtype=np.int64), np.log1p(np.abs(x)))
    for q in (1e-2, 1e-3):
        ratio = float(np.mean(lp[5000:] < math.log(q))) / q
        assert 0.5 < ratio < 2.0, f"{dist}: {ratio:.2f}x the expected exceedances at q={q}"


def test_tail_bank_does_not_learn_masked_rows_and_round_trips() -> None:
    bank = TailBank(2, min_n=5)
    ids = np.zeros(50, dtype=np.int64)
    bank.update(ids, np.linspace(0, 1, 50))
    before = bank.st.copy()
    bank.update(ids[:3], np.array([50.0, 60.0, 70.0]), np.zeros(3, dtype=bool))
    np.testing.assert_array_equal(bank.st, before)
    other = TailBank(2, min_n=5)
    other.set_state(bank.state())
    v = np.array([0.5, 3.0])
    np.testing.assert_array_equal(other.update(ids[:2], v), bank.update(ids[:2], v))


def test_score_is_one_half_at_the_budget() -> None:
    lq = row_log_q(0.5, 300.0)
    assert float(lq) == pytest.approx(math.log(0.5 * 300 / (7 * 86400)))
    s = budget_score(np.array([0.0, float(lq), 2 * float(lq), np.nan]), lq)
    np.testing.assert_allclose(s, [0.0, 0.5, 2 / 3, 0.0])


def test_budget_overrides_first_match_wins() -> None:
    cfg = BudgetedConfig.model_validate(
        {
            "alert_budget": {"false_alerts_per_series_week": 1.0},
            "alert_budget_overrides": [
                {"match": {"env": "dev"}, "false_alerts_per_series_week": 5},
                {"match": {"env": "dev", "team": "a"}, "false_alerts_per_series_week": 9},
            ],
        }
    )
    assert cfg.budget_for({"env": "dev", "team": "a"}) == 5
    assert cfg.budget_for({"env": "prod"}) == 1.0
    with pytest.raises(ValueError, match="greater than 0"):
        BudgetedConfig.model_validate({"alert_budget": {"false_alerts_per_series_week": 0}})
