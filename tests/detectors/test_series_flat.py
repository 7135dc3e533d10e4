"""The series detector on a value stuck for long: a frozen gauge pages once, however
long it stays frozen; a series whose repeats are its normal (an idle disk's zeros, one
constant value) is not judged on them; a gauge's blip pages once and resolves. The
stuck reading against a plain-Python reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.kernels.flat import flat_learn, flat_logp
from detectors.kernels.tail import PRIOR_PEAKS, T_N, T_SPREAD, TAIL_COLUMNS
from detectors.series import SeriesDetector
from tests.detectors.test_budget import ref_logp
from tests.detectors.test_series import T0, _episodes, _feed, square_wave

TP, RA, PA = 0.02, 1 / 5000, 1 / 200


@pytest.mark.parametrize("seed", range(4))
def test_a_frozen_value_pages_once_for_as_long_as_it_stays_frozen(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = T0 + 300.0 * np.arange(2400)
    v = np.round(rng.normal(100.0, 5.0, t.size), 2)  # two decimals, as exporters send
    v[2000:2100] = v[1999]  # the exporter hangs and repeats its last sample
    _, findings = _feed(SeriesDetector(), t, v, step=50)
    eps = _episodes(findings)
    assert len(eps) == 1
    assert t[2000] <= eps[0].ts <= t[2005]  # a few repeats in
    assert "repeated the same value" in eps[0].explanation
    firing = [f.ts for f in findings if f.anomalous]
    assert max(firing) >= t[2095]  # still firing near the end of the freeze


def _idle(rng: np.random.Generator, n: int) -> np.ndarray:
    """Bytes written by a mostly idle disk: zeros, and a burst about every 12 hours."""
    v = np.zeros(n)
    busy = rng.random(n) < 1 / 144
    v[busy] = rng.lognormal(17.0, 1.0, int(busy.sum()))
    return v


def test_a_series_whose_repeats_are_its_normal_is_not_judged_on_them() -> None:
    # Only a series that changes on nearly every row is watched for a stuck value: an
    # idle disk's lulls, even one six times its longest, are what it does.
    rng = np.random.default_rng(6)
    n = 4 * 2016
    t = T0 + 300.0 * np.arange(n)
    v = _idle(rng, n)
    longest = max(len(r) for r in np.split(v, np.flatnonzero(v)) if r.size)
    v[3 * 2016 : 3 * 2016 + 6 * longest] = 0.0
    _, findings = _feed(SeriesDetector(), t, v, step=256)
    assert not [f for f in findings if "repeated the same value" in f.explanation]


def test_a_series_that_was_always_one_value_never_pages() -> None:
    t = T0 + 300.0 * np.arange(3000)
    scores, findings = _feed(SeriesDetector(), t, np.full(t.size, 7.0), step=256)
    assert not findings
    assert float(scores.max()) < 0.5


@pytest.mark.parametrize(("period", "base", "blip"), [(300.0, 8.0, 9.0), (15.0, 0.0, 1.0)])
def test_a_blip_on_a_gauge_that_never_moved_pages_once_and_resolves(
    period: float, base: float, blip: float
) -> None:
    # A gauge (GPUs in a node, a queue that is always empty) blips once, then again a
    # day later. Back at its value, what the windows and the density remember of the
    # blip only decays, toward 0 without reaching it, and their tails never saw an
    # excess: the first episode stayed open for good and the second blip was never news.
    n = int(4 * 86400 / period)
    t = T0 + period * np.arange(n)
    v = np.full(n, base)
    first, second = n // 2, n // 2 + int(86400 / period)
    v[[first, second]] = blip
    scores, findings = _feed(SeriesDetector(), t, v, step=256)
    assert [e.ts for e in _episodes(findings)] == [t[first], t[second]]
    hot = np.flatnonzero(scores >= 0.5)
    # Each resolves within three windows (30 rows) of its blip; the last rows are quiet.
    assert set(hot.tolist()) <= set(range(first, first + 30)) | set(range(second, second + 30))
    assert not findings[-1].anomalous or findings[-1].ts < t[second + 30]


def ref_flat_logp(k: float, p_rep: float, s: list[float], min_n: float) -> float:
    """``flat_logp`` in plain Python: the least rare of k independent repeats, a run
    starting and going on k - 1 times (Laplace-smoothed), and the runs' tail."""
    _, rate, m1, _, runs, n = s
    if k <= 0 or n < min_n:
        return 0.0
    floor = 1 / (n + 2)
    lp = k * math.log(max(min(p_rep, 1.0), floor))
    r = min(runs, 1 / PA)
    go_on = (r * max(m1 - 1, 0) + 1) / (r * m1 + 2)
    lp = max(lp, math.log(max(min(rate, 1.0), floor)) + (k - 1) * math.log(go_on))
    if runs >= PRIOR_PEAKS:
        lp = max(lp, ref_logp(k, s))
    return lp


def test_stuck_reading_matches_plain_python_reference() -> None:
    rng = np.random.default_rng(8)
    tail = np.zeros((TAIL_COLUMNS, 1))
    p_rep, prev, runs, rows = 0.0, 0.0, 0, 0
    # Runs of random lengths (some long, some single repeats) between changing rows.
    for _ in range(60):
        for k in [0.0] * int(rng.integers(1, 80)) + list(np.arange(1.0, rng.integers(2, 200))):
            p_rep = flat_learn(float(k), prev, p_rep, tail, 0, RA, PA)
            runs += prev > 0 and k == 0
            prev, rows = float(k), rows + 1
            s = [float(x) for x in tail[:, 0]]
            for q in (1.0, 5.0, 60.0, 600.0):
                got = flat_logp(q, p_rep, tail, 0, 400.0, PA)
                assert got == pytest.approx(ref_flat_logp(q, p_rep, s, 400.0), rel=1e-9)
    assert tail[T_N, 0] == rows
    assert tail[T_SPREAD, 0] == runs >= PRIOR_PEAKS  # the runs' own tail was in play


def test_a_run_is_rare_by_the_series_own_runs() -> None:
    # Runs of about 100 repeats, every 200 rows: one of 100 is ordinary, one of 1,000 is
    # not; and a series that never repeated finds a few repeats in a row rare.
    tail = np.zeros((TAIL_COLUMNS, 1))
    p_rep, prev = 0.0, 0.0
    for k in ([0.0] * 100 + list(np.arange(1.0, 101.0))) * 20 + [0.0]:
        p_rep = flat_learn(k, prev, p_rep, tail, 0, RA, PA)
        prev = k
    assert flat_logp(100.0, p_rep, tail, 0, 400.0, PA) > math.log(1e-3)
    assert flat_logp(1000.0, p_rep, tail, 0, 400.0, PA) < math.log(1e-5)
    never = np.zeros((TAIL_COLUMNS, 1))
    for _ in range(4000):
        flat_learn(0.0, 0.0, 0.0, never, 0, RA, PA)
    assert flat_logp(1.0, 0.0, never, 0, 400.0, PA) > math.log(1e-3) - 6.0
    assert flat_logp(4.0, 0.0, never, 0, 400.0, PA) < math.log(1e-4)
    assert flat_logp(4.0, 0.0, never, 0, 5000.0, PA) == 0.0  # not judged before min_n


@pytest.mark.parametrize("seed", range(3))
def test_a_stopped_cycle_is_not_taken_for_a_new_level(seed: int) -> None:
    # A daily square wave (-20 / 80) freezes at 40 for most of a day. A stuck value is no
    # level shift: while it stays frozen the page keeps stating the usual cycle as
    # expected, never the profile moved by the frozen value's residual (which read
    # "expected 135" on a series never above 90).
    t, v, high = square_wave(seed, 12, -20.0, 4.0)
    end = 10 * 288 + 250
    v[10 * 288 : end] = 40.0
    _, findings = _feed(SeriesDetector(), t, v, step=256)
    frozen = [f for f in findings if t[10 * 288 + 20] <= f.ts <= t[end - 1]]
    assert frozen and all(f.anomalous for f in frozen)
    assert all(f.expected is not None and -40.0 <= f.expected <= 100.0 for f in frozen)
    # Nor is the first row after it: the cycle comes back where it always was, so the
    # page resolves within a few rows, stating that cycle (the frozen stretch's residual
    # used to become the new level there, and the resolve read "expected 50" on the day
    # half, "range -94 to 195"), and nothing pages for the rest of the series.
    after = [f for f in findings if f.ts >= t[end]]
    assert after and not after[-1].anomalous and after[-1].ts <= t[end + 5]
    usual = 80.0 if high[end] else -20.0
    for f in after:
        assert f.expected is not None and abs(f.expected - usual) < 5.0
        assert f.lower is not None and f.upper is not None
        assert usual - 50.0 <= f.lower and f.upper <= usual + 50.0
