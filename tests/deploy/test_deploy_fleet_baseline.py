"""The fleet baseline gauge is the latency detector's own baseline, set when the worker
refreshes its gauges (every /metrics request): the dashboard's "vs baseline" panels."""

from __future__ import annotations

from typing import cast

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from detectors.latency import LatencyDetector
from schemas.columns import InferenceColumns
from schemas.models import InferenceEvent, Status
from stream.config import LlmwatchConfig
from stream.metrics import WorkerMetrics
from stream.worker.engines import EnginePool
from stream.worker.ingest import BatchProcessor

START = 1_717_401_600.0


def _batch(t0: float, n: int, rng: np.random.Generator) -> InferenceColumns:
    rows = [
        InferenceEvent(
            ts=t0 + i * 0.05,
            gateway="gw-a",
            model="m",
            model_version="v1",
            request_id=f"r{t0}-{i}",
            status=Status.OK,
            latency_ms=float(rng.lognormal(np.log(400.0), 0.2)),
            ttft_ms=float(rng.lognormal(np.log(80.0), 0.2)),
        )
        for i in range(n)
    ]
    return InferenceColumns.from_rows(rows)


def _values(metrics: WorkerMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for fam in text_string_to_metric_families(metrics.render().decode()):
        for s in fam.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_baseline_gauge_follows_the_latency_detector() -> None:
    metrics = WorkerMetrics()
    pool = EnginePool(LlmwatchConfig())
    proc = BatchProcessor(pool, metrics, clock=lambda: START + 3600)
    engine = pool.get(0, lambda p: None, START)
    rng = np.random.default_rng(3)
    proc.refresh_gauges()
    assert _values(metrics, "llmwatch_fleet_baseline_seconds") == {}  # nothing learned yet
    for k in range(12):  # 20 req/s for 60 s: the p99 window fills, the baseline learns
        engine.process(_batch(START + k * 5.0, 100, rng))
    proc.refresh_gauges()
    got = _values(metrics, "llmwatch_fleet_baseline_seconds")
    key = {"model": "m", "model_version": "v1", "gateway": "gw-a", "quantile_level": "0.99"}

    def value(metric: str, bound: str) -> float:
        return got[tuple(sorted({**key, "metric": metric, "bound": bound}.items()))]

    # lognormal(400 ms, 0.2): p99 ~ 400 * e^(2.33 * 0.2) ~ 640 ms
    assert 0.5 < value("latency", "expected") < 0.8
    assert value("latency", "lower") < value("latency", "expected") < value("latency", "upper")
    assert 0.08 < value("ttft", "expected") < 0.2
    det = cast(LatencyDetector, next(d for d in engine.detectors if d.name == "latency"))
    view = det.levels["version"].view(0, 0)
    assert value("latency", "expected") == view.expected / 1000.0
