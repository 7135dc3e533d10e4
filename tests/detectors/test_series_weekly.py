"""The series detector's weekly profile: where weekdays and weekends differ in shape (a
taxi, ticket or web-traffic series), a holiday that looks like a Sunday on a weekday
pages; where they do not, the profile stays out of use (detected, not assumed)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from benchmarks.budget_calibration import week_of_two_shapes
from detectors.kernels import robust_layout as k
from detectors.series import SeriesDetector
from tests.detectors.test_series import _cols, _episodes, _feed, restores_alike

DAY = 86400.0
T0 = 1_404_172_800.0  # a Tuesday, 00:00 UTC
STEP = 1800.0  # 30-minute rows


def _taxi(seed: int, weeks: int = 6, holiday: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``weeks`` of 30-minute rows with 6% multiplicative noise; day ``holiday`` (a
    weekday) takes the weekend's shape."""
    t = T0 + STEP * np.arange(weeks * 7 * 48)
    day = ((t - T0) // DAY).astype(int)
    weekend = (day + 1) % 7 >= 5  # day 0 is a Tuesday
    if holiday is not None:
        weekend = weekend | (day == holiday)
    h = (t % DAY) / 3600.0
    level = week_of_two_shapes(h, weekend.astype(float))
    v = level * np.random.default_rng(seed).lognormal(0.0, 0.06, t.size)
    return t, v


def _pages(t: np.ndarray, v: np.ndarray, det: SeriesDetector | None = None) -> list[float]:
    _, findings = _feed(det or SeriesDetector(), t, v, step=48)
    return [(f.ts - T0) / DAY for f in _episodes(findings) if f.anomalous]


HOLIDAY = 31  # a Friday in week 5


def test_a_weekday_with_the_weekends_shape_pages() -> None:
    # Without the weekly profile the daily profile learned the mixture of both shapes,
    # and its tails every weekend's errors: on these eight seeds such a day peaked at
    # 0.42-0.49 and never paged; with it at 0.50-0.68, and seven of eight page.
    paged = 0
    for seed in range(8):
        t, v = _taxi(seed, holiday=HOLIDAY)
        paged += any(HOLIDAY <= d < HOLIDAY + 1 for d in _pages(t, v))
    assert paged >= 7


def test_the_weekly_profile_is_used_where_days_differ_in_shape_and_only_there() -> None:
    t, v = _taxi(7)
    shaped = SeriesDetector()
    _feed(shaped, t[: 13 * 48], v[: 13 * 48], step=48)
    assert shaped.st[k.S_WK_ON, 0] == 0.0  # never before two weeks
    _feed(shaped, t[13 * 48 :], v[13 * 48 :], step=48)
    assert shaped.st[k.S_WK_ON, 0] == 1.0
    # The same daily shape every day (weekday traffic all week): nothing to learn per week.
    plain = SeriesDetector()
    h = (t % DAY) / 3600.0
    noise = np.random.default_rng(7).lognormal(0.0, 0.06, t.size)
    _feed(plain, t, week_of_two_shapes(h, np.zeros(t.size)) * noise, step=48)
    assert plain.st[k.S_SEAS, 0] == 1.0 and plain.st[k.S_WK_ON, 0] == 0.0


def test_ordinary_weeks_of_a_weekly_shape_page_little() -> None:
    # Four clean series, weeks 3 to 6 (the profile in use): within the default budget
    # of 0.5 false alerts per series-week.
    pages = [d for seed in range(4) for d in _pages(*_taxi(seed + 10)) if d >= 14.0]
    assert len(pages) <= 0.5 * 4 * 4, pages


def test_a_version_13_snapshot_restores_with_a_fresh_weekly_profile() -> None:
    from detectors._series_state import restart_week

    t, v = _taxi(3, weeks=4)
    det = SeriesDetector()
    _feed(det, t[: 20 * 48], v[: 20 * 48], step=48)
    assert det.st[k.S_WK_ON, 0] == 1.0
    det.weeks = restart_week(det.series)  # what the migration starts it at
    payload = pickle.loads(det.snapshot())
    series = payload["state"]["series"]
    series.arrays["st"] = series.arrays["st"][:, : k.S_WK_RES]
    del series.arrays["week"], payload["state"]["weeks"]
    payload["state_version"] = 13
    fresh = SeriesDetector.restore(pickle.dumps(payload))
    assert fresh.series.week.tolist()[:1] == [-1] and fresh.weeks.hv.shape[0] == 0
    assert fresh.st[k.S_WK_ON, 0] == 0.0 and fresh.st[k.S_WK_RES, 0] == 0.0
    back = restores_alike(det, payload, t[20 * 48 :], v[20 * 48 :])
    # It borrows a profile on its first row after the restore (it is seasonal), which
    # starts as its daily model and stays out of use for two weeks from then.
    assert back.series.week[0] == 0 and back.st[k.S_WK_T0, 0] == t[20 * 48]
    assert back.st[k.S_WK_ON, 0] == 0.0


def test_only_seasonal_series_hold_a_weekly_profile() -> None:
    # Most fast scraped series are never seasonal (their plain level follows a daily
    # cycle): they do not pay the profile's 1,344 bytes. An evicted series gives its back.
    t, v = _taxi(5, weeks=3)
    det = SeriesDetector(series_ttl_s=2 * DAY)
    noise = np.random.default_rng(5).normal(100.0, 5.0, t.size)
    for i in range(0, t.size, 48):
        det.update(_cols(t[i : i + 48], v[i : i + 48], name="taxi"))  # series 0
        det.update(_cols(t[i : i + 48], noise[i : i + 48], name="noise"))  # series 1
    assert det.series.week.tolist()[:2] == [0, -1] and det.weeks.hv.shape[0] == 1
    later = t[-1] + STEP * np.arange(1, 3 * 48)
    det.update(_cols(later, np.full(later.size, 100.0), name="noise"))
    assert len(det.series) == 1 and det.series.week.tolist()[:1] == [-1]  # taxi evicted
    assert 0 in det.weeks.free[: int(det.weeks.n_free[0])].tolist()  # its row free again


@pytest.mark.parametrize("seed", [1000, 1001])
def test_a_weekend_that_starts_over_the_evening_is_not_stepped_into_at_midnight(
    seed: int,
) -> None:
    # A 15-second series follows its daily cycle with the plain level, which carries
    # the weekday offsets: it used to move by the weekend's offset at midnight, where a
    # traffic-like series turns into its weekend over the evening, and paged on Saturday
    # and Monday nights (budget_calibration's weekly_shape at 15 s: 3.55x the budget).
    from benchmarks.budget_calibration import T0 as B0
    from benchmarks.budget_calibration import _weekly_shape

    period = 15.0
    t = B0 + period * np.arange(int(6 * 7 * DAY / period))
    v = _weekly_shape(np.random.default_rng(seed), t.size, period)
    det = SeriesDetector()
    _, findings = _feed(det, t, v, step=4096)
    assert det.st[k.S_WEEK, 0] == 1.0  # the offsets are in use
    turns = [
        f.ts
        for f in _episodes(findings)
        if f.anomalous and f.ts - B0 > 15 * DAY and (f.ts % DAY < 3600 or f.ts % DAY > 82800)
    ]
    assert turns == []


def test_the_daily_profile_is_float32_and_a_version_14_snapshot_migrates_into_it() -> None:
    # The daily profile is float32 since version 15, as the weekly one is (384 bytes a
    # series less; nab_dev opens the same alerts at the same rows). A version-14
    # snapshot (a float64 profile) restores cast and scores as the detector it came from.
    from detectors.registry import Column

    assert SeriesDetector().bytes_per_series <= 1328  # 1,712 with a float64 profile
    t, v = _taxi(3, weeks=3)
    det = SeriesDetector()
    _feed(det, t[: 16 * 48], v[: 16 * 48], step=48)
    assert det.st[k.S_SEAS, 0] == 1.0  # the profile is in use: its values matter
    assert {det.series.arrays[a].dtype for a in ("pl", "ps")} == {np.dtype(np.float32)}
    payload = pickle.loads(det.snapshot())
    series = payload["state"]["series"]
    for name in ("pl", "ps"):  # as version 14 wrote them
        series.arrays[name] = series.arrays[name].astype(np.float64)
        series.columns[name] = Column(shape=series.columns[name].shape)
    payload["state_version"] = 14
    back = SeriesDetector.restore(pickle.dumps(payload))
    assert {back.series.arrays[a].dtype for a in ("pl", "ps")} == {np.dtype(np.float32)}
    assert back.series.columns["pl"].dtype == np.float32  # new series get float32 rows
    rest = slice(16 * 48, None)
    np.testing.assert_array_equal(
        back.update(_cols(t[rest], v[rest])).scores, det.update(_cols(t[rest], v[rest])).scores
    )
