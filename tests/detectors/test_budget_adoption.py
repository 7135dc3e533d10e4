"""Alert budgets in the latency, error-rate and traffic detectors: a per-label budget moves
a series' firing threshold, a heavy-tailed but stationary series stays within its budget
over a simulated week, and a real step still fires."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors.budget import budget_z
from detectors.error_rate import ErrorRateDetector
from detectors.latency import LatencyDetector
from detectors.traffic import TrafficDetector
from schemas.columns import STATUS_CODES, InferenceColumns
from tests.detectors.cases import inference_columns, obj, split

T0 = 1.7e9
WEEK = 7 * 86400.0
LOOSE = [{"match": {"gateway": "gw-b"}, "false_alerts_per_series_week": 1000}]


def _two_gateways(rate: float, seconds: float, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    ts = T0 + np.sort(rng.uniform(0, seconds, 2 * n))
    gw = np.where(rng.random(2 * n) < 0.5, "gw-a", "gw-b").astype(object)
    return {"ts": ts, "gateway": gw, "rng": rng}


def _episodes(outs: list[Any], **match: str) -> list[float]:
    """Start times of anomalous episodes (findings that open one) of matching series."""
    return [
        f.ts
        for o in outs
        for f in o.findings
        if f.anomalous and all(f.series.get(k) == v for k, v in match.items())
    ]


def _run(det: Any, batches: list[InferenceColumns]) -> list[Any]:
    return [det.update(b) for b in batches]


def test_latency_budget_override_moves_the_threshold() -> None:
    """A 36 % p99 slowdown, about 3.2 baseline spreads (the spread pinned by
    ``min_rel_spread``): over the threshold of a loose budget, under the default's."""
    s = _two_gateways(10.0, 3000.0, seed=21)
    t = s["ts"] - T0
    lat = 900.0 * s["rng"].lognormal(0.0, 0.02, t.size)
    lat = np.where((t >= 2000) & (t < 2500), 1.357 * lat, lat)
    cols = inference_columns(s["ts"], gateway=s["gateway"], host=obj("", t.size), latency_ms=lat)
    batches, _ = split(cols, np.zeros(t.size, dtype=bool), 40)  # 2 s batches
    kw: dict[str, Any] = {
        "metrics": ("latency_ms",),
        "host_level": False,
        "common_mode": False,
        "min_rel_spread": 0.1,
        "alert_budget_overrides": LOOSE,
    }
    det = LatencyDetector(**kw)
    outs = _run(det, batches)
    level = det.levels["version"]
    slot = {level.registry.labels(i)["gateway"]: i for i in range(len(level.registry))}
    thr = level.thresholds(np.array([slot["gw-a"], slot["gw-b"]]))
    assert thr[0] == budget_z(0.5, 60.0) and thr[1] == budget_z(1000, 60.0) < thr[0]
    assert _episodes(outs, gateway="gw-b") and not _episodes(outs, gateway="gw-a")
    # A fixed threshold_z overrides budgets for every series.
    fixed = LatencyDetector(**{**kw, "threshold_z": 8.0})
    assert not _episodes(_run(fixed, batches))


def test_latency_heavy_tailed_stationary_week_stays_within_budget_and_a_step_fires() -> None:
    """A week of Pareto-tailed latencies (tail index 2.5, a p99 six times the median) at
    5 requests/s, then a 3x slowdown for ten minutes, which must page within two
    minutes. At the default budget (0.5 false alerts a week) the week may hold at most 2
    alerts (Poisson(0.5) reaches 3 with probability 1.4 %)."""
    rng = np.random.default_rng(22)
    rate, seconds = 5.0, WEEK + 1800.0
    n = int(rate * seconds)
    ts = T0 + np.sort(rng.uniform(0, seconds, n))
    # Cut at a 20 s gateway deadline, as real latencies are (and the 64-bucket sketch's
    # ~47x range needs: a week of uncut Pareto maxima reaches ~400x the median).
    lat = np.minimum(600.0 * (1.0 + rng.pareto(2.5, n)), 20000.0)
    t = ts - T0
    step = (t >= WEEK + 600) & (t < WEEK + 1200)
    lat = np.where(step, 3.0 * lat, lat)
    cols = inference_columns(ts, latency_ms=lat)
    batches, _ = split(cols, np.zeros(n, dtype=bool), 100)  # 20 s batches
    det = LatencyDetector(metrics=("latency_ms",), host_level=False)
    starts = np.array(_episodes(_run(det, batches))) - T0
    week = starts[starts < WEEK]
    assert week.size <= 2, f"{week.size} alerts in a stationary week: {week}"
    fired = starts[(starts >= WEEK + 600) & (starts < WEEK + 1200)]
    assert fired.size and fired[0] - (WEEK + 600) <= 120, starts


def _error_stream(seed: int) -> list[InferenceColumns]:
    """Two gateways at 5 requests/s, 0.5 % errors for 30 min, then 3.5 % for 10 min."""
    s = _two_gateways(5.0, 2400.0, seed)
    t = s["ts"] - T0
    p = np.where(t >= 1800, 0.035, 0.005)
    failed = s["rng"].random(t.size) < p
    status = np.where(failed, STATUS_CODES["error"], STATUS_CODES["ok"]).astype(np.int64)
    cols = inference_columns(s["ts"], gateway=s["gateway"], status=status)
    batches, _ = split(cols, np.zeros(t.size, dtype=bool), 20)  # 2 s batches
    return batches


def test_error_rate_budget_override_moves_the_confidence() -> None:
    batches = _error_stream(23)
    det = ErrorRateDetector(burst_half_life_s=0.0, alert_budget_overrides=LOOSE)
    outs = _run(det, batches)
    assert _episodes(outs, gateway="gw-b") and not _episodes(outs, gateway="gw-a")
    # The per-series z is the budget's, at one evaluation per window half-life.
    z = {det.st.labels(s // 2)["gateway"]: det._z(np.array([s]), False)[0] for s in (0, 2)}
    assert math.isclose(z["gw-a"], budget_z(0.5, 120.0))
    assert math.isclose(z["gw-b"], budget_z(1000, 120.0))
    # Without the override neither fires: the default budget needs more evidence.
    assert not _episodes(_run(ErrorRateDetector(burst_half_life_s=0.0), batches))


def test_traffic_silence_follows_the_budget_and_the_gap() -> None:
    """Events every second on two gateways, then 12 s of silence: ln(week / (1 s x 0.5))
    = 14.0 expected gaps for the default budget, 6.4 for gw-b's 1000 a week."""
    ts = T0 + np.arange(0.0, 600.0, 1.0)
    rows = np.concatenate([ts, ts])
    gw = np.array(["gw-a"] * ts.size + ["gw-b"] * ts.size, dtype=object)
    order = np.argsort(rows, kind="stable")
    cols = inference_columns(rows[order], gateway=gw[order])
    det = TrafficDetector(min_silence_s=0.0, alert_budget_overrides=LOOSE)
    det.update(cols)
    silent = [f for f in det.tick(T0 + 599.0 + 12.0) if f.anomalous and "silent" in f.kind]
    assert {f.series["gateway"] for f in silent} == {"gw-b"}
    assert silent[0].upper is not None and 6.0 < silent[0].upper < 7.0
    later = [f for f in det.tick(T0 + 599.0 + 15.0) if f.anomalous and "silent" in f.kind]
    assert "gw-a" in {f.series["gateway"] for f in later}  # gw-b's is still reported
    later = [f for f in later if f.series["gateway"] == "gw-a"]
    assert later[0].upper is not None and math.isclose(
        later[0].upper, math.log(WEEK / 0.5), rel_tol=0.02
    )
