"""Alert budgets: the streaming tail kernel against a plain-Python reference, its
calibration on heavy and light tails, and the config/score helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.budget import BudgetedConfig, TailBank, budget_score, row_log_q
from detectors.kernels.tail import GAMMA_MAX, GAMMA_MIN, LOGP_FLOOR, TAIL_COLUMNS, tail_update

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
    step = 0.3 * max(spread, m1)
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
