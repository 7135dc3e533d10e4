"""The series detector's nearest-value statistic: the distance from a value to the
nearest of the series' last values (``detectors.kernels.nearest``), against its
plain-numpy reference, what it finds that no other statistic does (a value in the gap
between two usual modes), where it is not scored, and a version-9 snapshot's restore."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.kernels import robust_layout as k
from detectors.kernels.nearest import nearest_distance, nearest_push, nearest_reference
from detectors.kernels.tail import TAIL_COLUMNS
from detectors.series import SeriesDetector
from tests.detectors.test_series import (
    T0,
    _cols,
    _episodes,
    _feed,
    _old_payload,
    restores_alike,
)


@pytest.mark.parametrize("ring", [1, 7, 64])
def test_the_ring_kernels_agree_with_the_reference(ring: int) -> None:
    rng = np.random.default_rng(ring)
    x = np.round(rng.normal(1e4, 50.0, 400), 1)  # repeats too: a distance of 0
    x[200:210] = 3e4
    hv = np.zeros((3, ring), dtype=np.float32)  # three series' rings; series 1 is used
    got = np.full(x.size, np.nan)
    count = 0.0
    for i, v in enumerate(x):
        got[i] = nearest_distance(hv, 1, count, v)
        count = nearest_push(hv, 1, count, v)
    np.testing.assert_array_equal(got, nearest_reference(x, ring))
    assert np.all(hv[[0, 2]] == 0.0)  # the other series' rings untouched


def _two_modes(seed: int, n: int) -> np.ndarray:
    """A 5-minute series that sits at 10 or at 50 (+/- 0.3) and switches about every 40
    rows, not on any daily schedule: its plain level and scale span both modes."""
    rng = np.random.default_rng(seed)
    state = np.cumsum(rng.random(n) < 1 / 40) % 2
    return np.where(state == 1, 50.0, 10.0) + rng.normal(0.0, 0.3, n)


@pytest.mark.parametrize("seed", range(4))
def test_a_value_between_two_usual_modes_pages_and_says_why(seed: int) -> None:
    # Three rows at 30: within the range a value may take (the modes are 40 apart), not
    # past the residuals' envelope, but 20 from every value of the last week, where a
    # value is usually within a few hundredths of one. Only this statistic sees it.
    n = 4 * 2016
    t = T0 + 300.0 * np.arange(n)
    v = _two_modes(seed, n)
    at = 3 * 2016 + 100
    v[at : at + 3] = 30.0
    _, findings = _feed(SeriesDetector(), t, v, step=64)
    opened = [f for f in _episodes(findings) if t[at] <= f.ts <= t[at + 2]]
    assert len(opened) == 1
    assert "unusually far from every value it took lately" in opened[0].explanation
    _, without = _feed(SeriesDetector(nearest_samples=0), t, v, step=64)
    assert not [f for f in _episodes(without) if t[at] <= f.ts <= t[at + 2]]


def _scores(det: SeriesDetector, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    scores, _ = _feed(det, t, v, step=128)
    return scores


def test_not_scored_where_the_ring_spans_less_than_a_week() -> None:
    # At 15 seconds the last 2,016 rows are 8.4 hours: the statistic is not scored (its
    # findings and scores are those of a detector without it), however novel the value.
    n = 6000
    t = T0 + 15.0 * np.arange(n)
    v = _two_modes(1, n)
    v[5000:5003] = 30.0
    np.testing.assert_array_equal(
        _scores(SeriesDetector(), t, v), _scores(SeriesDetector(nearest_samples=0), t, v)
    )
    # ... and it is where the ring spans the week (nearest_span_s is the setting).
    shorter = SeriesDetector(nearest_span_s=3600.0)
    assert not np.array_equal(_scores(shorter, t, v), _scores(SeriesDetector(), t, v))


def test_not_scored_on_a_series_that_moves_in_coarse_steps() -> None:
    # Counts at 5 minutes: a distance of a few whole steps is not something a continuous
    # tail can judge, so the statistic is not scored.
    rng = np.random.default_rng(4)
    n = 4 * 2016
    t = T0 + 300.0 * np.arange(n)
    v = rng.poisson(3.0, n).astype(np.float64)
    np.testing.assert_array_equal(
        _scores(SeriesDetector(), t, v), _scores(SeriesDetector(nearest_samples=0), t, v)
    )


def test_version_9_snapshot_migrates_and_refills_the_ring() -> None:
    # Version 10 appended the ring, its count and the nearest-value tail. A v9 snapshot
    # restores with everything it had as it was and those fresh; it scores as a detector
    # whose ring was emptied at the same row, and it fills the ring again.
    rng = np.random.default_rng(9)
    n = 3 * 2016
    t = T0 + 300.0 * np.arange(n)
    v = rng.normal(100.0, 5.0, n)
    det = SeriesDetector()
    det.update(_cols(t[:2500], v[:2500]))
    payload = _old_payload(det, 9, 44, 8)  # also empties det's ring, count and tail
    back = restores_alike(det, payload, t[2500:], v[2500:])
    assert back.series.arrays["st"][0, k.S_NN_N] == n - 2500
    assert np.count_nonzero(back.rings.hv[back.series.ring[0]]) == 2016
    nn_tail = back.series.arrays["tails"][0, k.TAIL_NN * TAIL_COLUMNS :]
    assert nn_tail[5] > 1000  # T_N: the tail learned again


def test_a_value_already_in_the_ring_is_never_unusual() -> None:
    # On a very spiky series the tail's threshold steps by huge excesses and can wander
    # under 0; a distance of 0 (the exact value is in the ring) must still read as
    # nothing unusual, not as an excess of that threshold.
    from detectors.kernels.robust_channels import channels
    from detectors.kernels.tail import T_M1, T_M2, T_N, T_RATE, T_THRESH

    tails = np.zeros((k.TAILS * TAIL_COLUMNS, 1))
    nn = tails[k.TAIL_NN * TAIL_COLUMNS : (k.TAIL_NN + 1) * TAIL_COLUMNS]
    nn[[T_THRESH, T_RATE, T_M1, T_M2, T_N], 0] = -250.0, 0.02, 5e4, 5e9, 3000.0

    def read(u_nn: float) -> tuple[float, float, float]:
        return channels(tails, 0, False, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, u_nn, 1.0, 1.0, 1.0)

    lp, n_ch, why = read(0.0)
    assert lp == 0.0 and why != k.WHY_NEAR and n_ch == 6.0
    lp, _, why = read(1e6)  # far from everything: this statistic, and rare
    assert why == k.WHY_NEAR and lp < -4.0
