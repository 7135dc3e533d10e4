"""The series detector on a spike that recurs (a daily job): the first one pages, and
the series then knows it. A short episode's opening row is learned once it ends."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from detectors._series_state import restart_week
from detectors.kernels import robust_layout as k
from detectors.kernels.robust_learn import learn_short_episode
from detectors.kernels.tail import T_N, TAIL_COLUMNS
from detectors.series import SeriesDetector
from tests.detectors.test_series import T0, _cols, _episodes, _feed, restores_alike

DAY = 86400.0


def _daily_job(
    dt: float, seed: int, days: float = 21.0, start: float = 7.0
) -> tuple[np.ndarray, np.ndarray]:
    """N(50, 1) every ``dt`` seconds, and from day ``start`` one row at midnight 12
    higher: a job that starts running every night."""
    t = T0 + dt * np.arange(int(days * DAY / dt))
    v = np.random.default_rng(seed).normal(50.0, 1.0, t.size)
    v[((t - T0) / DAY >= start) & ((t - T0) % DAY < dt)] += 12.0
    return t, v


def _pages(t: np.ndarray, v: np.ndarray, det: SeriesDetector | None = None) -> list[float]:
    """The days on which episodes opened."""
    _, findings = _feed(det or SeriesDetector(), t, v, step=64)
    return [round((f.ts - T0) / DAY, 2) for f in _episodes(findings) if f.anomalous]


@pytest.mark.parametrize("dt", [300.0, 600.0])
@pytest.mark.parametrize("seed", range(3))
def test_a_nightly_spike_pages_once_or_twice_not_every_night(dt: float, seed: int) -> None:
    # Before, an episode's rows taught nothing, so each night's spike was as rare as the
    # first and paged: 5 to 15 pages in the 14 nights (6 seeds, 5 and 10 minutes).
    pages = _pages(*_daily_job(dt, seed))
    assert pages[:1] == [7.0]  # the first run is news
    assert len(pages) <= 2 and all(p < 9.0 for p in pages)


def _opened_then_ended(
    length: float, stuck: bool = False, rebased: bool = False
) -> tuple[float, float, float]:
    """The point tail's count, the envelope's top and the novelty tail's count after an
    episode of ``length`` rows opened on a row 6 scales out (``learn_short_episode``
    called as the step calls it)."""
    st = np.zeros((k.SERIES_COLUMNS, 1))
    tails = np.zeros((k.TAILS * TAIL_COLUMNS, 1))
    st[k.S_HI, 0], st[k.S_FIRST_T, 0] = 3.0, T0
    args = (0.02, 1.0 / 5000.0, 1.0 / 200.0)
    u, e = float(np.log1p(6.0)), 6.0
    learn_short_episode(st, tails, 0, T0 + 5 * DAY, 1.0, 0.0, stuck, u, u, e, 0.4, 12.0, *args)
    st[k.S_EP_REBASED, 0] = 1.0 if rebased else 0.0
    learn_short_episode(
        st, tails, 0, T0 + 5 * DAY, 2.0, length - 1.0, False, 0, 0, 0, 0, 12.0, *args
    )
    n = k.tail_of(tails, k.TAIL_A)[T_N, 0]
    assert st[k.S_ON_UA, 0] == 0.0  # nothing held once the episode has ended
    return float(n), float(st[k.S_HI, 0]), float(k.tail_of(tails, k.TAIL_NV)[T_N, 0])


def test_only_a_short_episode_teaches_its_opening_row() -> None:
    # A short one: the point tails, the envelope and the novelty tail take its row once.
    assert _opened_then_ended(4.0) == (1.0, 6.0, 1.0)
    assert _opened_then_ended(12.0) == (1.0, 6.0, 1.0)  # as long as a rebase needs
    # Longer (a lasting change), rebased (a level shift, learned by its rebase) or opened
    # by a stuck value (never the series' spread): nothing.
    assert _opened_then_ended(13.0) == (0.0, 3.0, 0.0)
    assert _opened_then_ended(4.0, rebased=True) == (0.0, 3.0, 0.0)
    assert _opened_then_ended(4.0, stuck=True) == (0.0, 3.0, 0.0)


def test_a_version_12_snapshot_restores_with_no_opening_row_held() -> None:
    t, v = _daily_job(300.0, 0, days=9.0)
    det = SeriesDetector()
    det.update(_cols(t[:2400], v[:2400]))
    det.series.arrays["st"][:, k.S_ON_UA : k.S_ON_NOV + 1] = 0.0  # what the migration starts
    det.weeks = restart_week(det.series)  # and version 14's
    payload = pickle.loads(det.snapshot())
    series = payload["state"]["series"]
    series.arrays["st"] = series.arrays["st"][:, : k.S_ON_UA]
    payload["state_version"] = 12
    back = restores_alike(det, payload, t[2400:], v[2400:])
    assert back.series.arrays["st"].shape[1] == k.SERIES_COLUMNS
