"""The series detector on what a pipeline does to a series without changing it: a
scrape that misses one row in ten, or three in ten, and a source that delivers a sample
twice. Neither must page on its own."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.kernels import robust_layout as k
from detectors.kernels.tail import T_N
from detectors.series import SeriesDetector
from tests.detectors.test_series import T0, _episodes, _feed

DAY = 86400.0


def _square(days: float, drop: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A daily square wave (80 from 09:00 to 18:00 UTC, 20 otherwise) sampled every 5
    minutes, with a share ``drop`` of its rows missing at random."""
    t = T0 + 300.0 * np.arange(int(days * DAY / 300.0))
    hour = ((t - T0) % DAY) / 3600.0
    v = np.where((hour >= 9.0) & (hour < 18.0), 80.0, 20.0)
    keep = np.random.default_rng(seed).random(t.size) >= drop
    return t[keep], v[keep]


@pytest.mark.parametrize("drop", [0.1, 0.3])
@pytest.mark.parametrize("seed", range(4))
def test_a_daily_pattern_with_missed_samples_does_not_page(drop: float, seed: int) -> None:
    # When the daily profile comes into use the residual envelope restarts at 3 scales;
    # the novelty tail had learned how often rows left the plain level's envelope, and
    # read the new envelope's first crossings (a transition sampled at a phase not seen
    # before) as that rare: 5 of these 8 series paged on day 3 (one of them twice).
    t, v = _square(14.0, drop, seed)
    _, findings = _feed(SeriesDetector(), t, v, step=64)
    assert [f.ts for f in _episodes(findings) if f.anomalous] == []


def test_the_novelty_tail_starts_again_when_the_baseline_changes_model() -> None:
    t, v = _square(5.0, 0.1, 0)
    det = SeriesDetector()
    modes, learned = [], []
    for i in range(0, t.size, 32):
        _feed(det, t[i : i + 32], v[i : i + 32], step=32)
        modes.append(float(det.st[k.S_ENV_MODE, 0]))
        tails = det.series.arrays["tails"].T
        learned.append(float(k.tail_of(tails, k.TAIL_NV)[T_N, 0]))
    switch = next(i for i in range(1, len(modes)) if modes[i] != modes[i - 1])
    # Learned over a day or more before the profile came into use; since then, only
    # the rows after it (at most one batch's).
    assert learned[switch - 1] > 100.0
    assert learned[switch] <= 32.0


def test_a_sample_delivered_twice_is_scored_once() -> None:
    # Every row twice (the same time and value, as an at-least-once source resends it),
    # in the same batch and across batches: the detector scores and reports exactly what
    # it does on the series sent once. Before, the copy was learned as a second row: a
    # repeat (the stuck-value statistic) and a second step of every average.
    n = 3000
    t = T0 + 300.0 * np.arange(n)
    v = np.random.default_rng(4).normal(50.0, 1.0, n)
    v[2500:2504] += 12.0
    once, f_once = _feed(SeriesDetector(), t, v, step=64)
    twice, f_twice = _feed(SeriesDetector(), np.repeat(t, 2), np.repeat(v, 2), step=63)
    np.testing.assert_array_equal(twice[0::2], once)
    assert not twice[1::2].any()  # the copies score 0: nothing new
    assert [(f.ts, f.score, f.anomalous) for f in f_twice] == [
        (f.ts, f.score, f.anomalous) for f in f_once
    ]
    assert any(f.anomalous for f in f_once)
