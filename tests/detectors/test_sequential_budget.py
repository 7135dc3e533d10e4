"""Alert budgets of the sequential tests: version_regression's CUSUM and drift's
Page-Hinkley take their thresholds from the budget by run length
(``detectors.budget.run_length_threshold``, shared with feedback).

Per decision: a per-label override changes the threshold (the same data fires at a
looser budget, not at the default), and on in-control data over a simulated week the
alerts stay within the budget (with slack), while a fixed low threshold on the very same
data does not (so the data can trip the test).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from detectors.budget import WEEK_S, run_length_threshold
from detectors.drift import METRICS, DriftDetector
from detectors.version_regression import VersionRegressionDetector
from schemas.columns import InferenceColumns
from tests.detectors.cases import inference_columns
from tests.detectors.test_drift import T0, stream


def _onsets(det: Any, batches: list[InferenceColumns]) -> list[Any]:
    return [f for b in batches for f in det.update(b).findings if f.anomalous]


def test_run_length_threshold_is_log_of_evaluations_per_budgeted_alert() -> None:
    assert math.isclose(run_length_threshold(1e6, 0.5, 0.0), math.log(2e6))
    assert run_length_threshold(1e6, 1000.0, 0.0) < run_length_threshold(1e6, 0.5, 0.0)
    assert run_length_threshold(10.0, 0.5, 6.0) == 6.0  # the floor
    assert run_length_threshold(0.1, 0.5, 0.0) == 0.0  # never negative


# --- version_regression -------------------------------------------------------------


def _rollout(gateway: str, seed: int = 0) -> list[InferenceColumns]:
    """v1 for 2000 s at 1 request/s, then v2 alike, except 30 requests 30 % slower that
    end a batch (the CUSUM is judged at batch ends): CUSUM ~9, between the thresholds."""
    rng = np.random.default_rng(seed)
    n = 4000
    i = np.arange(n)
    version = np.where(i >= 2000, "v2", "v1").astype(object)
    lat = 900.0 * rng.lognormal(0.0, 0.3, n)
    lat = np.where((i >= 2670) & (i < 2700), 1.3 * lat, lat)
    cols = inference_columns(
        T0 + i.astype(np.float64), gateway=gateway, model_version=version, latency_ms=lat
    )
    return [cols.take(slice(a, a + 100)) for a in range(0, n, 100)]


def test_version_regression_override_per_label_loosens_the_cusum() -> None:
    # min_ratio 1: the p95 floor off, so the CUSUM's threshold alone decides.
    loose = [{"match": {"gateway": "gw-a"}, "false_alerts_per_series_week": 100.0}]
    default = VersionRegressionDetector(min_ratio=1.0)
    assert _onsets(default, _rollout("gw-a")) == []
    for gateway, fires in (("gw-a", True), ("gw-b", False)):
        det = VersionRegressionDetector(min_ratio=1.0, alert_budget_overrides=loose)
        found = _onsets(det, _rollout(gateway))
        assert bool(found) is fires, gateway
        if fires:
            assert found[0].kind == "version_regression.latency"
            assert found[0].series["model_version"] == "v2"
    # The thresholds themselves: log(rows compared per week / budget), in CUSUM units.
    sid = int(default.st.registry.active_ids().max())  # v2
    assert math.isclose(default._h(sid), math.log(86400 / 0.5), rel_tol=0.05)  # 1 row/s
    det = VersionRegressionDetector(min_ratio=1.0, alert_budget_overrides=loose)
    _onsets(det, _rollout("gw-a"))
    assert math.isclose(det._h(sid), math.log(86400 / 100.0), rel_tol=0.05)


def _daily_rollouts(days: int = 7, per_s: float = 0.05, seed: int = 3) -> list[InferenceColumns]:
    """One model on one gateway, a new version every day, no version any different from
    the last: in-control for version_regression. Batches of 10 minutes."""
    rng = np.random.default_rng(seed)
    n = int(days * 86400 * per_s)
    ts = T0 + np.sort(rng.uniform(0.0, days * 86400.0, n))
    day = ((ts - T0) // 86400).astype(int)
    version = np.array([f"v{d + 1}" for d in day.tolist()], dtype=object)
    lat = 900.0 * rng.lognormal(0.0, 0.3, n)
    cols = inference_columns(ts, model_version=version, latency_ms=lat)
    cut = np.searchsorted(ts, T0 + np.arange(600.0, days * 86400.0, 600.0))
    return [cols.take(slice(a, b)) for a, b in zip(np.r_[0, cut], np.r_[cut, n], strict=True)]


def test_version_regression_in_control_week_stays_within_the_budget() -> None:
    batches = _daily_rollouts()
    budget = 5.0
    # Six versions are compared (v1 has no reference), each for its one day.
    bound = 2.0 * budget * 6
    det = VersionRegressionDetector(
        min_ratio=1.0, alert_budget={"false_alerts_per_series_week": budget}
    )
    assert len(_onsets(det, batches)) <= bound
    # The same data trips a CUSUM with a fixed low threshold: the test can fail.
    assert len(_onsets(VersionRegressionDetector(min_ratio=1.0, cusum_h=1.0), batches)) > bound


# --- drift ----------------------------------------------------------------------------


def _drift_feed(det: DriftDetector, minutes: int = 5) -> list[Any]:
    """Calm, completions twice as long for a few minutes, calm: long enough for the
    loose budget's threshold, too short for the default's (Page-Hinkley: 5.5 vs 13.1)."""
    out: list[Any] = []
    shift = stream(40, 40 + minutes, completion_scale=2.0, seed=1)
    for cols in (stream(0, 40), shift, stream(40 + minutes, 60)):
        out += _onsets(det, [cols.take(slice(i, i + 60)) for i in range(0, len(cols), 60)])
    return out


@pytest.mark.parametrize(("method", "minutes"), [("page_hinkley", 5), ("adwin", 10), ("kswin", 6)])
def test_drift_override_per_label_loosens_the_drift_test(method: str, minutes: int) -> None:
    # confirm_z off: the drift test alone confirms.
    assert _drift_feed(DriftDetector(method=method, confirm_z=1e9), minutes) == []
    for version, fires in (("v1", True), ("v9", False)):
        loose = [{"match": {"model_version": version}, "false_alerts_per_series_week": 1000.0}]
        det = DriftDetector(method=method, confirm_z=1e9, alert_budget_overrides=loose)
        found = _drift_feed(det, minutes)
        assert {f.kind for f in found} == ({"drift.completion_tokens"} if fires else set())


def test_drift_thresholds_come_from_each_series_budget() -> None:
    cfg = DriftDetector().cfg
    windows = WEEK_S / cfg.window_s
    labels = {"model": "m", "model_version": "v1"}
    assert math.isclose(cfg.page_hinkley_h(labels), math.log(2 * len(METRICS) * windows / 0.5))
    assert DriftDetector(ph_threshold=8.0).cfg.page_hinkley_h(labels) == 8.0
    # ADWIN's delta and KSWIN's alpha: the budget's share per check, per series' labels.
    loose = [{"match": {"model_version": "v2"}, "false_alerts_per_series_week": 60.0}]
    for method, param in (("adwin", "delta"), ("kswin", "alpha")):
        det = DriftDetector(method=method, alert_budget_overrides=loose)
        det.update(stream(0, 1))
        det.update(stream(0, 1, version="v2"))
        got = {det.st.labels(s)["model_version"]: det.rivers[s][0] for s in det.rivers}
        assert math.isclose(getattr(got["v1"], param), 0.5 / (len(METRICS) * windows))
        assert math.isclose(getattr(got["v2"], param), 60.0 / (len(METRICS) * windows))
    fixed = DriftDetector(method="adwin", adwin_delta=0.002)
    fixed.update(stream(0, 1))
    assert fixed.rivers[0][0].delta == 0.002


def _week_by_window(per_s: float, days: int = 7) -> list[InferenceColumns]:
    """In-control traffic of one (model, version), three events per 30 s window, one
    batch per window (findings are judged at batch ends)."""
    out: list[InferenceColumns] = []
    for d in range(days):
        cols = stream(d * 1440, (d + 1) * 1440, per_s=per_s, seed=100 + d)
        w = np.floor((cols.ts - T0) / 30.0).astype(np.int64)
        cut = np.flatnonzero(np.diff(w)) + 1
        out += [
            cols.take(slice(a, b))
            for a, b in zip(np.r_[0, cut], np.r_[cut, len(cols)], strict=True)
        ]
    return out


def test_drift_in_control_week_stays_within_the_budget() -> None:
    # Page-Hinkley (the default method). ADWIN and KSWIN have no such test: on this week
    # neither fires even at delta / alpha 0.05 (the effect floor holds them), so it could
    # not fail; their parameters per label are checked above.
    batches = _week_by_window(per_s=0.1)
    budget = 5.0
    bound = 2.0 * budget  # one series-week
    det = DriftDetector(alert_budget={"false_alerts_per_series_week": budget})
    assert len(_onsets(det, batches)) <= bound
    # A fixed low Page-Hinkley threshold on the same week pages past that bound.
    assert len(_onsets(DriftDetector(ph_threshold=1.0), batches)) > bound
