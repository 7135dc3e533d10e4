"""Latency detector on simulated streams: fires on its incidents, quiet on clean data."""

from __future__ import annotations

import numpy as np
from cases import inference_columns, split
from cases.latency import make_case, stream

from detectors.latency import LatencyDetector


def run(det: LatencyDetector, batches: list) -> list:  # type: ignore[type-arg]
    return [det.update(b) for b in batches]


def test_fires_on_slowdown_and_host_throttle() -> None:
    batches, _ = make_case(3)
    outs = run(LatencyDetector(), batches)
    fired = [f for o in outs for f in o.findings if f.anomalous]
    keys = {(f.series.get("gateway"), f.series.get("host"), f.kind) for f in fired}
    assert ("gw-b", None, "latency.latency_p99") in keys
    assert (None, "h3", "latency.ttft_p99") in keys
    f = next(f for f in fired if f.series.get("gateway") == "gw-b")
    assert "vs baseline" in f.explanation and f.observed > f.expected  # type: ignore[operator]
    assert any(not f.anomalous for o in outs for f in o.findings)  # recovery reported


def test_quiet_on_clean_stream() -> None:
    s = stream(5)
    cols = inference_columns(s["ts"], **{k: v for k, v in s.items() if k != "ts"})
    batches, _ = split(cols, np.zeros(len(cols), dtype=bool), 200)
    outs = run(LatencyDetector(min_baseline_weight=300), batches)
    late = [f for o in outs[15:] for f in o.findings if f.anomalous]
    assert len(late) <= 2
    assert np.mean(np.concatenate([o.scores for o in outs]) >= 0.5) < 0.01


def test_nan_snapshot_and_memory() -> None:
    batches, _ = make_case(1)
    det = LatencyDetector()
    run(det, batches[:10])
    copy = LatencyDetector.restore(det.snapshot())
    b = batches[10]
    lat = np.where(np.arange(len(b)) % 3 == 0, np.nan, b.latency_ms)
    bad = inference_columns(b.ts, latency_ms=lat, ttft_ms=np.full(len(b), np.inf))
    a1, a2 = det.update(bad), copy.update(bad)
    np.testing.assert_array_equal(a1.scores, a2.scores)
    assert np.isfinite(a1.scores).all()
    assert det.bytes_per_series <= 1024
