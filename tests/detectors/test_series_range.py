"""The series detector's stated range (a finding's ``lower``/``upper``) means what its
explanation says: a value just past it pages by itself, and it stays on the series' own
scale instead of running to numbers no series has ever shown."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from detectors.series import SeriesDetector
from tests.detectors.test_series import T0, _cols


def _score_of(det: SeriesDetector, t: float, value: float) -> float:
    return float(det.update(_cols(np.array([t]), np.array([value]))).scores[0])


@pytest.mark.parametrize("family", ["gaussian", "heavy_tailed", "low_counts", "spiky"])
def test_a_value_just_past_the_stated_range_pages_by_itself(family: str) -> None:
    rng = np.random.default_rng(5)
    n = 3000
    t = T0 + 300.0 * np.arange(n)
    v = {
        "gaussian": rng.normal(80.0, 2.0, n),
        "heavy_tailed": rng.standard_t(2.5, n) * 3.0 + 50.0,
        "low_counts": rng.poisson(2.0, n).astype(np.float64),
        "spiky": np.where(rng.random(n) < 0.05, rng.lognormal(3.0, 1.0, n), 0.0),
    }[family]
    v[2500:2520] += 6.0 * np.std(v)  # an episode, so that findings state a range
    det = SeriesDetector()
    det.update(_cols(t[:2400], v[:2400]))
    checked = 0
    for i in range(2400, n):
        before = copy.deepcopy(det)
        out = det.update(_cols(t[i : i + 1], v[i : i + 1]))
        for f in out.findings:
            if f.expected is None:
                continue
            # Each stated side: a value just past it pages (a side below zero is not
            # stated on a series never below zero).
            for bound in (f.lower, f.upper):
                if bound is not None:
                    gap = bound - f.expected
                    past = bound + 1e-3 * gap + np.sign(gap) * 1e-9
                    assert _score_of(copy.deepcopy(before), t[i], past) >= 0.5
                    checked += 1
    assert checked >= 1


def test_the_range_of_a_low_count_series_stays_on_its_scale() -> None:
    # Poisson(2) every 5 minutes for 4 weeks (values 0 to about 10), ending in a burst of
    # 12 extra so that every series has an episode to state ranges. The point tail's reach
    # alone, a quantile of a log-compressed statistic exponentiated, stated upper bounds
    # of 25 to 4,240 on these seeds; anything past about 12 here pages as novel.
    uppers: list[float] = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        n = 4 * 2016
        t = T0 + 300.0 * np.arange(n)
        v = rng.poisson(2.0, n).astype(np.float64)
        v[n - 40 : n - 38] += 12.0
        det = SeriesDetector()
        uppers += [
            f.upper
            for i in range(0, n, 64)
            for f in det.update(_cols(t[i : i + 64], v[i : i + 64])).findings
            if f.upper is not None
        ]
    assert len(uppers) >= 20
    assert max(uppers) <= 20.0


@pytest.mark.parametrize("offset", [0.0, -5.0])
def test_a_bound_below_zero_is_stated_only_on_a_series_that_has_been_below_zero(
    offset: float,
) -> None:
    # A spiky count (bytes, requests) is never negative: a lower bound below zero tells
    # a reader nothing ("-150,321,042 to 561,350,539" bytes), so only the upper is stated.
    # The same series 5 lower has been negative: its lower bound is stated.
    rng = np.random.default_rng(5)
    n = 3000
    t = T0 + 300.0 * np.arange(n)
    v = np.where(rng.random(n) < 0.05, rng.lognormal(3.0, 1.0, n), 0.0) + offset
    v[2500:2520] += 6.0 * np.std(v)
    findings = SeriesDetector().update(_cols(t, v)).findings
    stated = [f for f in findings if f.upper is not None]
    assert stated
    if offset == 0.0:
        assert all(f.lower is None or f.lower >= 0.0 for f in stated)
        assert any(f.lower is None and "up to" in f.explanation for f in stated)
    else:
        assert all(f.lower is not None and f.lower < 0.0 for f in stated)
