"""The series detector's young test: between a quarter of its warm-up (and a day) and
the end of the warm-up, a series pages only on a value far beyond its whole range."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest

from benchmarks.budget_calibration import FAMILIES
from detectors._series_state import restart_week
from detectors.base import Finding
from detectors.kernels import robust_layout as k
from detectors.series import SeriesConfig, SeriesDetector
from tests.detectors.test_series import T0, _cols, _episodes, _feed, restores_alike


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(50.0, 1.0, n)


def _starts(findings: list[Finding], t: np.ndarray) -> list[int]:
    """The rows where episodes opened."""
    return [int(np.searchsorted(t, f.ts)) for f in _episodes(findings) if f.anomalous]


def _jump(dt: float, at: int, n: int = 400, size: float = 30.0, **cfg: Any) -> list[int]:
    t = T0 + dt * np.arange(n)
    v = _noise(n)
    v[at:] += size
    _, findings = _feed(SeriesDetector(SeriesConfig(**cfg)), t, v, step=16)
    return _starts(findings, t)


@pytest.mark.parametrize("dt, at", [(300.0, 320), (3600.0, 150)])
def test_a_jump_in_a_young_series_pages_where_it_happens(dt: float, at: int) -> None:
    # 30 scales: about five times the range of a few hundred normal rows. Without the
    # young test nothing pages in the warm-up, and by its end the level has moved.
    assert _jump(dt, at) == [at]
    assert _jump(dt, at, young_reach=0.0) == []


def test_the_page_states_the_range_it_went_beyond() -> None:
    t = T0 + 300.0 * np.arange(400)
    v = _noise(400)
    v[330] += 40.0
    _, findings = _feed(SeriesDetector(), t, v, step=16)
    first = _episodes(findings)[0]
    assert first.ts == t[330] and first.anomalous
    assert first.interval_s == 300.0  # the lifecycle counts samples with it
    assert first.upper is not None and first.lower is not None and first.expected is not None
    # The range is the values seen so far, widened by young_reach widths each side.
    lo, hi = v[:330].min(), v[:330].max()
    width = hi - lo
    reach = SeriesConfig().young_reach
    assert first.upper == pytest.approx(hi + reach * width, abs=1e-6)
    assert first.lower == pytest.approx(lo - reach * width, abs=1e-6)
    assert first.observed is not None and first.observed > first.upper
    assert "above its expected range" in first.explanation


def test_no_young_page_before_a_day_or_a_quarter_of_the_warm_up() -> None:
    # 5 minutes: row 250 is under a day (288 rows). Hourly: row 80 is past a day but
    # under a quarter of the warm-up (100 rows).
    assert _jump(300.0, 250) == []
    assert _jump(3600.0, 80) == []


def test_a_series_that_never_changed_does_not_page_on_its_first_change() -> None:
    # One value says nothing of how far the series moves (a gauge of replicas).
    t = T0 + 300.0 * np.arange(400)
    v = np.full(400, 3.0)
    v[320:] = 4.0
    _, findings = _feed(SeriesDetector(), t, v, step=16)
    assert _starts(findings, t) == []


# Heavy tails put a few draws far beyond the range of the first ones. Ten hourly series
# are young for 17.9 series-weeks: a quarter of the budget (0.5) there is 2 pages.
HEAVY = {"heavy_tailed_t2.5": 2, "bursty": 2}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_young_hourly_series_with_nothing_wrong_do_not_page(family: str) -> None:
    # An hourly series is young from row 100 to row 400 (12.5 days): the longest young
    # stretch. Ten series of each shape budget_calibration feeds, none with an anomaly.
    t = T0 + 3600.0 * np.arange(400)
    pages = []
    for seed in range(10):
        v = FAMILIES[family](np.random.default_rng(seed), t.size, 3600.0)
        _, findings = _feed(SeriesDetector(), t, v, step=32)
        pages += _starts(findings, t)
    assert len(pages) <= HEAVY.get(family, 0), pages


def test_a_version_11_snapshot_keeps_no_highest_value_so_the_young_test_is_off() -> None:
    # Version 11 did not keep the highest value; a range kept from the restore on would
    # be too narrow (a normal peak would land beyond it). So a restored young series
    # does not page on a jump the one that was never restored pages on, and the rest of
    # its state is what it was.
    t = T0 + 300.0 * np.arange(400)
    v = _noise(400)
    det = SeriesDetector()
    det.update(_cols(t[:300], v[:300]))
    payload = pickle.loads(det.snapshot())
    series = payload["state"]["series"]
    series.arrays["st"] = series.arrays["st"][:, : k.S_HIGHEST]
    payload["state_version"] = 11
    back = SeriesDetector.restore(pickle.dumps(payload))
    assert math.isnan(back.series.arrays["st"][0, k.S_HIGHEST])
    np.testing.assert_array_equal(
        back.series.arrays["st"][:, : k.S_HIGHEST], det.series.arrays["st"][:, : k.S_HIGHEST]
    )
    v[330:] += 30.0
    assert _starts(back.update(_cols(t[300:], v[300:])).findings, t) == []
    assert _starts(det.update(_cols(t[300:], v[300:])).findings, t) == [330]


def test_a_version_11_snapshot_of_a_warm_series_scores_alike() -> None:
    # Past its warm-up the highest value is never read: the restored detector scores
    # the next rows exactly as the original.
    t = T0 + 300.0 * np.arange(1200)
    v = _noise(1200)
    det = SeriesDetector()
    det.update(_cols(t[:900], v[:900]))
    det.series.arrays["st"][:, k.S_HIGHEST] = np.nan  # what the migration starts it at
    det.series.arrays["st"][:, k.S_ON_UA : k.S_ON_NOV + 1] = 0.0  # and version 13's
    det.weeks = restart_week(det.series)  # and version 14's
    payload = pickle.loads(det.snapshot())
    series = payload["state"]["series"]
    series.arrays["st"] = series.arrays["st"][:, : k.S_HIGHEST]
    payload["state_version"] = 11
    restores_alike(det, payload, t[900:], v[900:])


def test_rows_after_a_jump_do_not_claim_to_be_beyond_the_range() -> None:
    # The jump widens the range; the episode's next rows are inside it, and their text
    # says so instead of repeating the jump's reason.
    t = T0 + 300.0 * np.arange(400)
    v = _noise(400)
    v[320:] += 40.0
    _, findings = _feed(SeriesDetector(), t, v, step=1)
    episode = [f for f in findings if f.ts >= t[320]]
    assert len(episode) >= 2 and "above its expected range" in episode[0].explanation
    for f in episode[1:]:
        assert f.observed is not None and f.upper is not None and f.observed <= f.upper
        assert "within its expected range" in f.explanation
        assert "far beyond every value" not in f.explanation
