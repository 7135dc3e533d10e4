"""The series detector's alert budget holds where its statistics are nearly independent:
on low counts (an error count per interval) the point tail, the window and novelty each
fire on their own, and correcting for five of them by sqrt(5) spent 1.37x the budget."""

from __future__ import annotations

import numpy as np

from benchmarks.budget_calibration import episodes
from detectors.series import SeriesConfig


def test_low_counts_page_within_the_budget() -> None:
    # Poisson(2) every 5 minutes, 6 series x 8 weeks (the calibration benchmark's own
    # family): 32 episodes before the n ** 0.75 correction (0.68 per series-week), 24
    # after (0.51); allow 1.2x the budget.
    n, seeds = 8 * 2016, 6
    count = sum(
        episodes(np.random.default_rng(1000 + s).poisson(2.0, n).astype(np.float64), 300.0)
        for s in range(seeds)
    )
    cfg = SeriesConfig()
    weeks = seeds * (n - cfg.warmup_samples) / 2016
    assert count / weeks <= 1.2 * cfg.alert_budget.false_alerts_per_series_week
