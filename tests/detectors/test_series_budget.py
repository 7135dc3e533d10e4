"""The series detector's alert budget holds on low counts (an error count per interval):
there the point tail, the window and novelty each fire on their own (correcting for five
of them by sqrt(5) spent 1.37x the budget), and the values move in whole steps, which
continuous tails misjudge without a continuity correction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.budget_calibration import T0, _columns, episodes, onsets
from detectors.budget import WEEK_S
from detectors.series import SeriesConfig, SeriesDetector


def _poisson_false_alerts_per_series_week(period_s: float, weeks: int, seeds: int = 6) -> float:
    """Episodes per scored series-week on Poisson(2) counts (the calibration benchmark's
    own family and seeds), after the warm-up."""
    n = int(weeks * WEEK_S / period_s)
    count = sum(
        episodes(np.random.default_rng(1000 + s).poisson(2.0, n).astype(np.float64), period_s)
        for s in range(seeds)
    )
    return count / (seeds * (n - SeriesConfig().warmup_samples) * period_s / WEEK_S)


@pytest.mark.parametrize(("period_s", "weeks"), [(300.0, 8), (3600.0, 26)])
def test_low_counts_page_within_the_budget(period_s: float, weeks: int) -> None:
    # 6 series of 8 weeks at 5 minutes: 32 episodes with the sqrt(n) correction for
    # testing several statistics (0.68 per series-week), 24 with n ** 0.75 (0.51), 10
    # with the continuity correction (0.21). 6 series of 26 weeks hourly: 91 episodes
    # (1.28x the budget) before the continuity correction, 60 (0.85x) after: the tails
    # are continuous fits, so a count at a step was scored by the step's far side, and
    # the residual envelope's decayed edges were met again by ties.
    budget = SeriesConfig().alert_budget.false_alerts_per_series_week
    assert _poisson_false_alerts_per_series_week(period_s, weeks) <= budget


@pytest.mark.parametrize(
    ("family", "step"),
    [("counts", 1.0), ("cpu_percent", 0.002), ("gaussian", None), ("spiky", None)],
)
def test_a_series_that_moves_in_steps_is_told_apart(family: str, step: float | None) -> None:
    # Counts and values reported to a fixed precision move in whole steps; continuous
    # values and a spiky series (whose smallest change is only its smallest spike) do
    # not, and get no continuity correction.
    from detectors.kernels import robust_layout as k

    rng = np.random.default_rng(7)
    n = 2000
    v = {
        "counts": rng.poisson(2.0, n).astype(np.float64),
        "cpu_percent": np.round(rng.normal(0.07, 0.004, n) / 0.002) * 0.002,
        "gaussian": rng.normal(50.0, 1.0, n),
        "spiky": np.where(rng.random(n) < 0.05, rng.lognormal(3.0, 1.0, n), 0.0),
    }[family]
    det = SeriesDetector()
    det.update(_columns(T0 + 300.0 * np.arange(n, dtype=np.float64), v))
    st = det.series.arrays["st"][0]
    if step is None:
        assert st[k.S_LATTICE] < 0.9
    else:
        assert st[k.S_LATTICE] >= 0.9
        assert st[k.S_RES] == pytest.approx(step, rel=1e-6)


def test_a_seasonal_window_tail_of_few_peaks_does_not_page() -> None:
    # Its scale is a handful of excesses' mean (0.015 on an hourly daily cycle, where the
    # window's spread is near 0.1): a window a little past it read as the budget's
    # rarity, and hourly series paged after their warm-up on their own profile's errors.
    from detectors.kernels import robust_layout as k
    from detectors.kernels.robust_channels import channels
    from detectors.kernels.tail import PRIOR_PEAKS, T_M1, T_M2, T_N, T_RATE, T_THRESH, TAIL_COLUMNS

    def read(learned: float) -> tuple[float, float, float]:
        tails = np.zeros((k.TAILS * TAIL_COLUMNS, 1))
        for which in (k.TAIL_S, k.TAIL_SW):
            tail = tails[which * TAIL_COLUMNS : (which + 1) * TAIL_COLUMNS]
            tail[[T_THRESH, T_RATE, T_M1, T_M2, T_N], 0] = 0.7, 0.02, 0.015, 4e-4, learned
        return channels(tails, 0, True, 0.5, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, np.nan, 0.0, 0.0, 0.0)

    young = PRIOR_PEAKS / 0.02 - 50  # fewer than PRIOR_PEAKS peaks at a rate of 0.02
    lp, _, why = read(young)  # judged by the point alone, under its threshold
    assert why == k.WHY_POINT and lp == pytest.approx(math.log(0.02) * 0.5 / 0.7)
    lp, _, why = read(3000.0)  # 60 peaks: the window is judged, and pages
    assert why == k.WHY_WINDOW and lp < -10.0  # past any per-row budget of 1 a week


def test_hourly_daily_cycles_page_within_the_budget_after_their_warm_up() -> None:
    # benchmarks.numbered_probe's 24 hourly series with nothing wrong in them: 32 pages
    # in rows 400-699 (0.75 per series-week) while young seasonal window tails were
    # judged, 21 (0.49) since they are not.
    from benchmarks.numbered_probe import probe

    pages = 0
    for seed in range(24):
        values, _ = probe(seed, anomalies=False)
        opened = onsets(values[:700], 3600.0)
        pages += sum(400 <= i < 700 for i in opened)
    per_series_week = pages / (24 * 300 * 3600.0 / WEEK_S)
    assert per_series_week <= 0.6
