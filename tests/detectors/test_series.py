"""The generic metric-series detector: quiet on its own kind of noise, one episode per
anomaly, a new baseline after a level shift, seasonality learned, explanations true."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from detectors.base import Finding
from detectors.kernels.tail import TAIL_COLUMNS
from detectors.series import SeriesConfig, SeriesDetector, explain
from schemas.columns import MetricColumns, series_key

T0 = 1.7e9


def _cols(t: np.ndarray, v: np.ndarray, name: str = "m", env: str = "prod") -> MetricColumns:
    n = t.size
    obj = np.empty(n, dtype=object)
    obj[:] = name
    key = np.empty(n, dtype=object)
    key[:] = series_key(name, {"env": env})
    labels = np.empty(n, dtype=object)
    labels[:] = [{"env": env}] * n
    return MetricColumns(ts=t, name=obj, series=key, labels=labels, value=v)


def _feed(
    det: SeriesDetector, t: np.ndarray, v: np.ndarray, step: int = 1, **kw: str
) -> tuple[npt.NDArray[np.float64], list[Finding]]:
    outs = [
        det.update(_cols(t[i : i + step], v[i : i + step], **kw)) for i in range(0, t.size, step)
    ]
    scores = np.concatenate([o.scores for o in outs])
    findings = [f for o in outs for f in o.findings]
    return scores, findings


def _episodes(findings: list[Finding]) -> list[Finding]:
    """The first anomalous finding of each run (what opens an alert)."""
    out, prev = [], False
    for f in findings:
        if f.anomalous and not prev:
            out.append(f)
        prev = f.anomalous
    return out


def test_level_shift_is_one_episode_then_a_new_baseline() -> None:
    rng = np.random.default_rng(3)
    t = T0 + 300.0 * np.arange(3000)
    v = rng.normal(100.0, 5.0, t.size)
    v[2000:] += 40.0  # a lasting 8-sigma shift
    scores, findings = _feed(SeriesDetector(), t, v)
    eps = [f for f in _episodes(findings) if f.ts >= t[1990]]
    assert len(eps) == 1  # one alert for the shift, none for the new level after it
    assert t[2000] <= eps[0].ts <= t[2003]
    assert (scores[2100:] >= 0.5).mean() < 0.01  # the new level is normal now
    assert any(not f.anomalous and f.ts > eps[0].ts for f in findings)


def _shift_then(after: float, back_at: int, n: int, seed: int) -> list[float]:
    """Page starts on N(100, 5) every 5 minutes, +40 from row 2000 and ``after`` (off
    the original level) from row ``back_at``."""
    rng = np.random.default_rng(seed)
    t = T0 + 300.0 * np.arange(n)
    v = rng.normal(100.0, 5.0, t.size)
    v[2000:back_at] += 40.0
    v[back_at:] += after
    _, findings = _feed(SeriesDetector(), t, v, step=50)
    return [f.ts - t[back_at] for f in _episodes(findings) if f.ts >= t[1990]]


@pytest.mark.parametrize("seed", range(4))
def test_a_return_to_the_level_before_a_shift_does_not_page_again(seed: int) -> None:
    # A weekend's end, a rollback: back where the series was a day ago is a known state.
    starts = _shift_then(0.0, 2300, 2800, seed)
    assert len(starts) == 1 and starts[0] < 0  # the shift pages, the return does not


@pytest.mark.parametrize("seed", range(4))
def test_a_move_to_a_third_level_after_a_shift_still_pages(seed: int) -> None:
    starts = _shift_then(-40.0, 2300, 2800, seed)  # 40 under where it was before
    assert len(starts) == 2 and 0 <= starts[1] <= 900


@pytest.mark.parametrize("seed", range(2))
def test_the_level_before_a_shift_is_forgotten_after_a_week(seed: int) -> None:
    starts = _shift_then(0.0, 2000 + 2100, 4600, seed)  # back after 7.3 days
    assert len(starts) == 2 and 0 <= starts[1] <= 900


def test_spike_scores_high_and_does_not_move_the_baseline() -> None:
    rng = np.random.default_rng(5)
    t = T0 + 60.0 * np.arange(1500)
    v = rng.normal(10.0, 1.0, t.size)
    v[1200] = 60.0
    det = SeriesDetector()
    scores, findings = _feed(det, t, v)
    assert scores[1200] > 0.6 and scores[:1200].max() < 0.5
    assert len(_episodes(findings)) == 1
    assert abs(float(det.st[4, 0]) - 10.0) < 0.5  # S_LVL


@pytest.mark.parametrize(
    "make",
    [
        lambda rng, n: rng.standard_t(2.5, n) * 3 + 50,  # heavy-tailed
        lambda rng, n: np.where(rng.random(n) < 0.05, rng.lognormal(3, 1, n), 0.0),  # bursts
        lambda rng, n: 100 + 0.01 * np.arange(n) + rng.normal(0, 2, n),  # trend
        lambda rng, n: 100 + 30 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 3, n),
        lambda rng, n: 20 + 60 * ((np.arange(n) % 288) > 144) + rng.normal(0, 2, n),  # square
    ],
    ids=["heavy_tailed", "bursty", "trending", "daily_sine", "daily_square"],
)
def test_quiet_within_budget_on_normal_series(make) -> None:  # type: ignore[no-untyped-def]
    # 4 weeks at 5 min; the budget is 0.5 false alerts a week: allow 3x the budget
    # over four independent series-months before calling it broken.
    total = 0
    weeks = 0.0
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        n = 4 * 2016
        t = T0 + 300.0 * np.arange(n)
        _, findings = _feed(SeriesDetector(), t, make(rng, n), step=16)
        total += len(_episodes(findings))
        weeks += 4
    assert total / weeks <= 1.5


def test_daily_seasonality_is_detected_and_a_missing_peak_is_found() -> None:
    rng = np.random.default_rng(9)
    n = 12 * 288
    t = T0 + 300.0 * np.arange(n)
    day = (t % 86400) / 86400
    v = 50 + 30 * np.sin(2 * np.pi * day) + rng.normal(0, 1.5, n)
    v[9 * 288 : 10 * 288] = 50 + rng.normal(0, 1.5, 288)  # a day without its cycle
    det = SeriesDetector()
    _, findings = _feed(det, t, v)
    assert det.st[8, 0] == 1.0  # S_SEAS: the profile is in use
    eps = _episodes(findings)
    assert eps and all(t[9 * 288] <= f.ts <= t[10 * 288] + 3600 for f in eps)


def square_wave(
    seed: int, days: int, low: float, high_sd: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A daily square wave at 5 minutes: ``low`` +/- 1 by night, 80 +/- ``high_sd`` by
    day. Returns the times, the values and which rows are day rows."""
    rng = np.random.default_rng(seed)
    n = days * 288
    t = T0 + 300.0 * np.arange(n)
    high = (t % 86400) >= 43200
    v = np.where(high, 80 + rng.normal(0, high_sd, n), low + rng.normal(0, 1.0, n))
    return t, v, high


@pytest.mark.parametrize("seed", range(8))
def test_half_a_day_a_few_scales_off_its_daily_profile_pages(seed: int) -> None:
    # A daily square wave (20 +/- 1 at night, 80 +/- 4.5 by day); one day's high half
    # sits 20 lower, about 4.4 of its scales: no row is far out by itself, the half day
    # is. When its first rows could raise the point tail's threshold three spreads the
    # anomaly hid itself and this paged on one seed in eight.
    t, v, high = square_wave(seed, 14, 20.0, 4.5)
    day = np.arange(t.size) // 288 == 11
    v[high & day] -= 20.0
    _, findings = _feed(SeriesDetector(), t, v, step=256)
    assert any(t[day][0] <= f.ts <= t[day][-1] for f in _episodes(findings))


@pytest.mark.parametrize("seed", range(8))
def test_hours_of_a_weaker_cycle_do_not_switch_the_daily_profile_off(seed: int) -> None:
    # Half the daily swing missing for 12 hours from the morning peak: an anomaly, but
    # one the seasonality test must not take for the end of seasonality. With the test
    # averaged over one day, 2 of these 8 seeds dropped the profile for 2-3 days after
    # it (and measured everything against the plain level meanwhile).
    from detectors.kernels import robust_layout as k

    rng = np.random.default_rng(seed)
    n = 14 * 288
    t = T0 - T0 % 86400 + 300.0 * np.arange(n)
    cycle = 10 * np.sin(2 * np.pi * (t % 86400) / 86400)
    v = 50 + cycle + rng.normal(0, 1, n)
    weak = slice(10 * 288 + 72, 10 * 288 + 216)  # day 10, 06:00-18:00
    v[weak] -= 0.5 * cycle[weak]
    det = SeriesDetector()
    seasonal = []
    for i in range(0, n, 12):
        det.update(_cols(t[i : i + 12], v[i : i + 12]))
        if i >= 3 * 288:  # the profile is in use from day 3
            seasonal.append(det.st[k.S_SEAS, 0])
    assert min(seasonal) == 1.0


def test_gap_reanchors_instead_of_alerting() -> None:
    rng = np.random.default_rng(2)
    t = np.r_[T0 + 300.0 * np.arange(1500), T0 + 300.0 * 1500 + 5 * 86400 + 300.0 * np.arange(500)]
    v = np.r_[rng.normal(20, 1, 1500), rng.normal(35, 1, 500)]
    _, findings = _feed(SeriesDetector(), t, v)
    assert not any(f.anomalous for f in findings)


def test_budget_override_per_label() -> None:
    cfg = SeriesConfig.model_validate(
        {"alert_budget_overrides": [{"match": {"env": "dev"}, "false_alerts_per_series_week": 7}]}
    )
    det = SeriesDetector(cfg)
    t = T0 + 300.0 * np.arange(3)
    det.update(_cols(t, np.ones(3), name="a", env="dev"))
    det.update(_cols(t, np.ones(3), name="b", env="prod"))
    assert det.st[17, 0] == 7.0 and det.st[17, 1] == 0.5  # S_BUDGET


def test_explanation_agrees_with_observed_and_bounds() -> None:
    rng = np.random.default_rng(11)
    t = T0 + 300.0 * np.arange(2500)
    v = rng.normal(80, 2, t.size)
    v[1500:1510] += 30
    v[2000:2030] -= 12
    _, findings = _feed(SeriesDetector(), t, v, step=7)
    checked = 0
    for f in findings:
        assert f.severity == "warning"
        if (f.lower is None and f.upper is None) or f.observed is None or f.expected is None:
            continue
        lower = -math.inf if f.lower is None else f.lower
        upper = math.inf if f.upper is None else f.upper
        assert lower <= f.expected <= upper
        outside = f.observed > upper or f.observed < lower
        assert ("above" in f.explanation or "below" in f.explanation) == outside
        assert ("within" in f.explanation) == (not outside)
        checked += 1
    assert checked >= 2


def test_explain_text() -> None:
    assert "above its expected range 1 to 3" in explain("m", "s", 5.0, 2.0, 1.0, 3.0, True)
    assert "recent values are unusual" in explain("m", "s", 2.5, 2.0, 1.0, 3.0, True)
    assert "no longer anomalous" in explain("m", "s", 2.5, 2.0, 1.0, 3.0, False)
    why = "outliers have come unusually often lately"
    assert explain("m", "s", 2.5, 2.0, 1.0, 3.0, True, why).endswith(f"for s, but {why}")
    no_range = explain("m", "s", 2.5, None, None, None, True, why)
    assert no_range == f"m at 2.5 is unusual for s: {why}"
    no_range = explain("m", "s", 2.5, 2.0, None, None, True, why)
    assert no_range == f"m at 2.5 is unusual for s (expected 2): {why}"
    # A side not stated (a bound below zero on a series never below it) is left out.
    assert "above its expected range, up to 3 (expected 2)" in explain(
        "m", "s", 5.0, 2.0, None, 3.0, True
    )
    assert explain("m", "s", 2.5, 2.0, None, 3.0, True, why).endswith(f"for s, but {why}")
    assert "below its expected range, from 1 (expected 2)" in explain(
        "m", "s", 0.5, 2.0, 1.0, None, True
    )
    # Outside the range the range is the reason; a resolve gives none.
    assert why not in explain("m", "s", 5.0, 2.0, 1.0, 3.0, True, why)
    assert why not in explain("m", "s", 2.5, 2.0, 1.0, 3.0, False, why)


@pytest.mark.parametrize("seed", range(4))
def test_a_sustained_shift_within_the_range_says_it_is_sustained(seed: int) -> None:
    # +3 sd for 60 rows: single values stay inside the range a value may take alone, so
    # the page must say what was unusual instead (the window, the level's drift, or
    # outliers coming often), not "its recent values are unusual".
    rng = np.random.default_rng(seed)
    t = T0 + 300.0 * np.arange(2600)
    v = rng.normal(100.0, 5.0, t.size)
    v[2000:2060] += 15.0
    _, findings = _feed(SeriesDetector(), t, v, step=20)
    inside = [
        f for f in findings
        if f.anomalous and f.lower is not None and f.lower <= f.observed <= f.upper  # type: ignore[operator]
    ]  # fmt: skip
    assert inside
    sustained = ("stayed unusually far", "level has drifted", "come unusually often")
    assert all(any(w in f.explanation for w in sustained) for f in inside[:3])
    assert not any("recent values are unusual" in f.explanation for f in inside)


def test_version_1_snapshot_is_refused_so_the_engine_starts_it_fresh() -> None:
    from detectors.base import StateVersionError

    old = {
        "format": 1,
        "name": "series",
        "params": {"enabled": True, "half_life_s": 21600.0, "series_ttl_s": 3600.0},
        "state": {"registry": {}, "st": np.zeros((8, 4)), "firing": set()},
    }
    with pytest.raises(StateVersionError, match=r"'series'.*version 1 has no migration"):
        SeriesDetector.restore(pickle.dumps(old))
    det = SeriesDetector(series_ttl_s=3600.0)
    det.update(_cols(T0 + 300.0 * np.arange(5), np.ones(5)))
    back = SeriesDetector.restore(det.snapshot())
    assert back.cfg.series_ttl_s == 3600.0 and back.active_series() == 1
    for name in ("st", "pl", "ps", "pw", "tails"):
        np.testing.assert_array_equal(back.series.arrays[name], det.series.arrays[name])


def _old_payload(det: SeriesDetector, version: int, scalars: int, tails: int) -> dict[str, Any]:
    """A snapshot of ``det`` as ``version`` wrote it: its first ``scalars`` scalars and
    ``tails`` tails per series (later versions appended the rest). ``det``'s last and
    lowest values, step and share of whole steps are set to what a migration to version 7
    starts them at (NaN: not kept, and 0), and its runs of repeats to what one to
    version 8 starts them at (0, and a fresh tail), and its nearest-value ring, count and
    tail to what one to version 10 starts them at (empty, 0, fresh), its highest value
    to what one to version 12 starts it at (NaN: not kept), its episode's opening row
    to what one to version 13 starts it at (0: none), and its weekly profile to what one
    to version 14 starts it at (each series' level and scale, out of use, its age
    counted from the next row), so the two detectors can be compared column for
    column."""
    from detectors._series_state import RingPool, restart_week
    from detectors._series_state import columns as _columns
    from detectors.kernels import robust_layout as k
    from detectors.registry import SeriesState

    st, tl = det.series.arrays["st"], det.series.arrays["tails"]
    if version < 7:
        st[:, [k.S_PREV, k.S_LOWEST]] = np.nan
        st[:, [k.S_RES, k.S_LATTICE]] = 0.0
    if version < 8:
        st[:, [k.S_SAME, k.S_REP, k.S_RUN_F]] = 0.0
        tl[:, k.TAIL_FL * TAIL_COLUMNS : (k.TAIL_FL + 1) * TAIL_COLUMNS] = 0.0
    st[:, [k.S_NN_N, k.S_NN_RUN]] = 0.0
    st[:, k.S_HIGHEST] = np.nan
    st[:, k.S_ON_UA : k.S_ON_NOV + 1] = 0.0
    det.weeks = restart_week(det.series)
    tl[:, k.TAIL_NN * TAIL_COLUMNS :] = 0.0
    det.series.arrays["ring"][:] = -1
    det.rings = RingPool(det.rings.width)
    payload = pickle.loads(det.snapshot())
    new = payload["state"]["series"]
    cols = {n: c for n, c in _columns(48, scalars, tails).items() if n != "ring"}
    old = SeriesState(("series",), cols, ttl_s=new.registry.ttl_s)
    arrays = {n: a for n, a in new.arrays.items() if n != "ring"}
    arrays["st"] = arrays["st"][:, :scalars]
    arrays["tails"] = arrays["tails"][:, : tails * TAIL_COLUMNS]
    old.adopt(new.registry, arrays)
    state = {n: v for n, v in payload["state"].items() if n != "rings"}
    return {**payload, "state_version": version, "state": {**state, "series": old}}


def _v3_payload(det: SeriesDetector) -> dict[str, Any]:
    """Version 3: 30 scalars and six tails (version 4 appended the envelope and the
    novelty tail)."""
    return _old_payload(det, 3, 30, 6)


def _v5_payload(det: SeriesDetector) -> dict[str, Any]:
    """Version 5: 34 scalars (version 6 appended the level before the last level shift
    and its time)."""
    return _old_payload(det, 5, 34, 7)


def _v6_payload(det: SeriesDetector) -> dict[str, Any]:
    """Version 6: 37 scalars (version 7 appended the last value and the series' step)."""
    return _old_payload(det, 6, 37, 7)


def _v7_payload(det: SeriesDetector) -> dict[str, Any]:
    """Version 7: 41 scalars and seven tails (version 8 appended the run of repeats, the
    share of rows that repeat, the running run's peak and the tail of runs)."""
    return _old_payload(det, 7, 41, 7)


def _v4_payload(det: SeriesDetector) -> dict[str, Any]:
    """Version 4: 33 scalars (version 5 appended the plain window tail's running-run
    peak)."""
    return _old_payload(det, 4, 33, 7)


def _trained_on_noise() -> tuple[np.ndarray, np.ndarray, SeriesDetector]:
    """3,000 5-minute rows of N(100, 5) and a detector that has seen the first 1,800."""
    rng = np.random.default_rng(3)
    t = T0 + 300.0 * np.arange(3000)
    x = rng.normal(100.0, 5.0, t.size)
    det = SeriesDetector()
    det.update(_cols(t[:1800], x[:1800]))
    return t, x, det


def _pages_a_shift_alike(
    det: SeriesDetector, back: SeriesDetector, t: np.ndarray, x: np.ndarray
) -> None:
    """A lasting 8-sigma shift from row 2000 pages the restored detector where it pages
    the original, and near the shift."""
    x[2000:] += 40.0
    want = det.update(_cols(t[1800:], x[1800:]))
    got = back.update(_cols(t[1800:], x[1800:]))
    starts = [f.ts for f in _episodes(got.findings) if f.anomalous]
    assert starts == [f.ts for f in _episodes(want.findings) if f.anomalous]
    assert any(abs(ts - t[2000]) <= 1800 for ts in starts)


def _restored_as_it_was(
    det: SeriesDetector, back: SeriesDetector, t: np.ndarray, x: np.ndarray
) -> None:
    for name in ("st", "pl", "ps", "pw", "tails"):
        np.testing.assert_array_equal(back.series.arrays[name], det.series.arrays[name])
    _pages_a_shift_alike(det, back, t, x)


def test_version_3_snapshot_migrates_keeping_what_it_learned() -> None:
    # Version 4 appended the residual envelope (3 scalars) and the novelty tail: a v3
    # snapshot restores with every v3 column as it was and those fresh, and the restored
    # detector still pages a lasting shift once, as the original does.
    from detectors.kernels import robust_layout as k

    t, x, det = _trained_on_noise()
    back = SeriesDetector.restore(pickle.dumps(_v3_payload(det)))
    st, tails = back.series.arrays["st"], back.series.arrays["tails"]
    np.testing.assert_array_equal(st[:, :30], det.series.arrays["st"][:, :30])
    reach = 3.0 * 1.2533 * st[:, k.S_SC]
    np.testing.assert_allclose(st[:, [k.S_HI, k.S_LO]], np.c_[reach, -reach])
    assert st.shape[1] == k.SERIES_COLUMNS
    # The window's run and the earlier level at 0, the last value not kept.
    np.testing.assert_array_equal(st[:, 33 : k.S_PREV], 0.0)
    assert np.all(np.isnan(st[:, [k.S_PREV, k.S_LOWEST]]))
    np.testing.assert_array_equal(st[:, [k.S_RES, k.S_LATTICE]], 0.0)
    np.testing.assert_array_equal(tails[:, 36:], 0.0)
    _pages_a_shift_alike(det, back, t, x)


def test_version_4_snapshot_migrates_keeping_what_it_learned() -> None:
    # Version 5 appended one scalar (the plain window tail's running-run peak): a v4
    # snapshot restores with everything it had as it was and that at 0 (not in a run),
    # and the restored detector pages a lasting shift where the original does.
    from detectors.kernels import robust_layout as k

    t, x, det = _trained_on_noise()
    det.series.arrays["st"][:, k.S_RUN_A] = 0.0  # as v4 would have left it
    back = SeriesDetector.restore(pickle.dumps(_v4_payload(det)))
    _restored_as_it_was(det, back, t, x)


def test_version_5_snapshot_migrates_keeping_what_it_learned() -> None:
    # Version 6 appended the level before the last level shift (three scalars): a v5
    # snapshot restores with everything it had as it was and those at 0 (no earlier level
    # known), and the restored detector pages a lasting shift where the original does.
    from detectors.kernels import robust_layout as k

    t, x, det = _trained_on_noise()
    st = det.series.arrays["st"]
    assert np.all(st[:, [k.S_ALT_A, k.S_ALT_S, k.S_ALT_T]] == 0.0)  # nothing shifted yet
    back = SeriesDetector.restore(pickle.dumps(_v5_payload(det)))
    _restored_as_it_was(det, back, t, x)


def test_version_6_snapshot_migrates_keeping_what_it_learned() -> None:
    # Version 7 appended the last value, the series' step and the share of whole steps: a
    # v6 snapshot restores with everything it had as it was, no step known, and pages a
    # lasting shift where the original does; the step is learned again after the restore.
    from detectors.kernels import robust_layout as k

    t, x, det = _trained_on_noise()
    back = SeriesDetector.restore(pickle.dumps(_v6_payload(det)))
    assert back.series.arrays["st"].shape[1] == k.SERIES_COLUMNS
    _restored_as_it_was(det, back, t, x)
    assert back.series.arrays["st"][0, k.S_RES] > 0.0


def test_version_7_snapshot_migrates_keeping_what_it_learned() -> None:
    # Version 8 appended the runs of repeats (three scalars and a tail): a v7 snapshot
    # restores with everything it had as it was and those fresh, pages a lasting shift
    # where the original does, and learns the runs again.
    from detectors.kernels import robust_layout as k

    t, x, det = _trained_on_noise()
    back = SeriesDetector.restore(pickle.dumps(_v7_payload(det)))
    assert back.series.arrays["tails"].shape[1] == k.TAILS * TAIL_COLUMNS
    _restored_as_it_was(det, back, t, x)
    assert back.series.arrays["tails"][0, k.TAIL_FL * TAIL_COLUMNS + 5] > 0  # T_N: learning


def test_version_8_snapshot_migrates_an_open_episode() -> None:
    # Version 9 counts an episode's rows toward a rebase from its last stuck stretch, in
    # the column where version 8 kept the episode's start time. A v8 snapshot taken inside
    # an episode restores with all its rows counted (it had no stuck stretch), so the
    # restored detector rebases and pages as the original does.
    from detectors.kernels import robust_layout as k

    t, x, det = _trained_on_noise()
    x[1805:] += 40.0
    det.update(_cols(t[1800:1810], x[1800:1810]))
    st = det.series.arrays["st"]
    assert st[0, k.S_EP_LEN] >= 3 and st[0, k.S_EP_MOVED] == st[0, k.S_EP_LEN]
    payload = _old_payload(det, 8, 44, 8)
    v8 = payload["state"]["series"].arrays["st"]
    v8[:, k.S_EP_MOVED] = t[1805]  # as version 8 wrote it: when the episode began
    restores_alike(det, payload, t[1810:], x[1810:])


def restores_alike(
    det: SeriesDetector, payload: dict[str, Any], t: np.ndarray, x: np.ndarray
) -> SeriesDetector:
    """``payload`` restores to ``det``'s arrays exactly, and the restored detector scores
    the rows ``t``, ``x`` as ``det`` does (both are fed them). Returns it."""
    back = SeriesDetector.restore(pickle.dumps(payload))
    for name, have in det.series.arrays.items():
        np.testing.assert_array_equal(back.series.arrays[name], have)
    held = det.series.ring[det.series.ring >= 0]
    np.testing.assert_array_equal(back.rings.hv[held], det.rings.hv[held])
    got = back.update(_cols(t, x))
    np.testing.assert_array_equal(got.scores, det.update(_cols(t, x)).scores)
    return back


def test_version_2_snapshot_migrates_through_version_3() -> None:
    # Version 2 kept one column per series beside its own registry; version 3 a
    # SeriesState (a row per series). A v2 payload, built as v2 wrote it, restores to
    # exactly what the same state restores to from version 3.
    from detectors._series_state import _ARRAYS

    t, x, det = _trained_on_noise()
    v3 = _v3_payload(det)
    old = v3["state"]["series"]
    v2_state = {name: old.arrays[name].T.copy() for name in _ARRAYS}
    v2_state |= {"registry": old.registry.state(), "firing": set(v3["state"]["firing"].firing)}
    v2 = {**v3, "state_version": 2, "state": v2_state}
    via_v2 = SeriesDetector.restore(pickle.dumps(v2))
    via_v3 = SeriesDetector.restore(pickle.dumps(v3))
    for name in _ARRAYS:
        np.testing.assert_array_equal(via_v2.series.arrays[name], via_v3.series.arrays[name])
    x[2000:] += 40.0
    got = via_v2.update(_cols(t[1800:], x[1800:]))
    want = via_v3.update(_cols(t[1800:], x[1800:]))
    np.testing.assert_array_equal(got.scores, want.scores)
    assert [f.ts for f in got.findings] == [f.ts for f in want.findings] != []


def _weekly_series(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Six weeks of 15-minute samples from a Monday: a daily sine, weekends 25 lower,
    noise of sd 1. Also the day index of each row (0 = the first Monday)."""
    rng = np.random.default_rng(seed)
    n = 6 * 7 * 96
    t = 1_700_438_400.0 + 900.0 * np.arange(n)  # a Monday, 00:00 UTC
    day = np.floor((t - t[0]) / 86400.0)
    weekend = (day % 7) >= 5
    v = 50 + 10 * np.sin(2 * np.pi * (t % 86400) / 86400) - 25 * weekend + rng.normal(0, 1, n)
    return t, v, day


_LATE_DAY = 22  # the weekday offsets are in use well before this


def _late_starts(t: np.ndarray, v: np.ndarray) -> tuple[SeriesDetector, list[float]]:
    det = SeriesDetector()
    _, findings = _feed(det, t, v, step=8)
    return det, [f.ts for f in _episodes(findings) if f.ts >= t[0] + _LATE_DAY * 86400]


def test_weekly_pattern_is_learned_when_present() -> None:
    from detectors.kernels import robust_layout as k

    seeds = range(21, 29)
    false = 0
    for seed in seeds:
        t, v, day = _weekly_series(seed)
        wed = day == 37  # a Wednesday in week 6 that looks like a Sunday
        v[wed] -= 25
        det, late = _late_starts(t, v)
        assert det.st[k.S_WEEK, 0] == 1.0 and det.st[k.S_SEAS, 0] == 1.0
        # The odd Wednesday pages (and its return to normal the next morning may too).
        assert any(t[wed][0] <= ts <= t[wed][-1] for ts in late), seed
        false += sum(not t[wed][0] <= ts <= t[wed][-1] + 86400 for ts in late)
    # Once the offsets are in use, weekends page no more. Without them these seeds page
    # about 40 times here (weekend starts and ends); what is left is what the budget
    # allows on noise: 0.5 per series-week, about 11 in these 8 x 20 days.
    weeks = len(seeds) * (42 - _LATE_DAY) / 7
    assert false <= 2 * 0.5 * weeks


def test_weekday_offsets_are_unbiased_on_an_exact_weekly_pattern() -> None:
    # Measured against a running mean of day means (which swings over the week), Monday
    # came out at 9.3 and Friday at 5.0 on this shape, Saturday -20.3 and Sunday -17.3.
    from detectors.kernels import robust_layout as k

    t, _, day = _weekly_series(0)
    v = 50.0 - 25.0 * ((day % 7) >= 5)
    det = SeriesDetector()
    _feed(det, t[: 15 * 96], v[: 15 * 96], step=96)
    pw = det.series.pw[0]
    assert det.st[k.S_WEEK, 0] == 1.0
    assert pw == pytest.approx([25 * 2 / 7] * 5 + [-25 * 5 / 7] * 2, abs=1e-6)


def test_a_weekday_lower_than_usual_pages_on_a_weekly_series() -> None:
    # A whole weekday 6 noise sds low: a quarter of the weekend dip, and what a holiday
    # looks like. It pages on all 8 seeds (on 2 with the offsets biased as above).
    found = 0
    for seed in range(21, 29):
        t, v, day = _weekly_series(seed)
        odd = day == 37 + seed % 3  # a Wednesday, Thursday or Friday in week 6
        v[odd] -= 6.0
        _, late = _late_starts(t, v)
        found += any(t[odd][0] <= ts <= t[odd][-1] for ts in late)
    assert found >= 7


def test_a_fast_weekly_series_does_not_page_every_weekend() -> None:
    # At 15 seconds the plain level tracks a daily sine closely, so the daily profile is
    # never adopted and the weekday offsets reach the prediction only through the level,
    # which moves by the offsets' difference where the day turns. Without that, each
    # weekend's start and end page as level shifts (2 per week, every week).
    from detectors.kernels import robust_layout as k

    late = 0
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        n = 5 * 7 * 5760
        t = 1_700_438_400.0 + 15.0 * np.arange(n)  # a Monday, 00:00 UTC
        weekend = (np.floor((t - t[0]) / 86400.0) % 7) >= 5
        v = 100 + 30 * np.sin(2 * np.pi * (t % 86400) / 86400) - 40 * weekend
        v += rng.normal(0, 3, n)
        det = SeriesDetector()
        _, findings = _feed(det, t, v, step=20_000)
        assert det.st[k.S_WEEK, 0] == 1.0 and det.st[k.S_SEAS, 0] == 0.0
        late += sum(f.ts >= t[0] + 21 * 86400 for f in _episodes(findings))
    assert late <= 2  # 2 series x 2 weeks: the budget allows about 2


def test_an_ordinary_spike_after_a_quiet_day_does_not_page() -> None:
    # A mostly-zero spiky series (disk writes, error counts) has a robust scale of 0, so
    # its z unit is the floor, a thousandth of its typical magnitude. That magnitude
    # remembered 64 rows, so a quiet day took the floor toward 0 and the next ordinary
    # spike looked astronomically large: this paged on 4 of these 6 seeds.
    paged = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        n = 3000
        t = T0 + 300.0 * np.arange(n)
        v = np.where(rng.random(n) < 0.05, rng.uniform(20, 60, n), 0.0)
        v[2600:2900] = 0.0
        v[2900] = 40.0
        _, findings = _feed(SeriesDetector(), t, v, step=50)
        paged += any(f.ts == t[2900] for f in _episodes(findings))
    assert paged == 0


def test_a_spike_past_anything_seen_pages_on_a_spiky_series() -> None:
    # A flat series with a spike (0.3 to 1.5 over a base of 0.13) in 1% of its rows: its
    # point tail learns those spikes, so a spike to 2.4 is only a little further out in
    # its terms. It is past everything the series has shown, though, and novelty beyond
    # the residual envelope pages it (without that channel none of these seeds pages).
    found, false = 0, 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        n = 3600  # 12.5 days at 5 minutes
        t = T0 + 300.0 * np.arange(n)
        v = 0.13 + rng.normal(0, 0.01, n)
        spikes = rng.random(n) < 0.01
        v[spikes] += rng.uniform(0.3, 1.5, spikes.sum())
        v[3400] = 2.4
        _, findings = _feed(SeriesDetector(), t, v, step=50)
        starts = [f.ts for f in _episodes(findings)]
        found += t[3400] in starts
        false += sum(ts != t[3400] for ts in starts)
    assert found >= 4
    assert false <= 6  # the budget allows about one per series in 12.5 days


def test_step_changes_page_once_each() -> None:
    rng = np.random.default_rng(200)
    n = 4 * 2016
    t = T0 + 300.0 * np.arange(n)
    jump = np.zeros(n)
    at = [2083, 3851, 4637, 7826]
    jump[at] = [18.6, -9.0, 32.9, -12.4]  # 4.5 to 16 noise sds
    v = 100 + np.cumsum(jump) + rng.normal(0, 2, n)
    _, findings = _feed(SeriesDetector(), t, v, step=16)
    rows = [round((f.ts - T0) / 300.0) for f in _episodes(findings)]
    assert len(rows) == len(at)
    assert all(0 <= r - a <= 5 for r, a in zip(rows, at, strict=True))
