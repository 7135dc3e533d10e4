"""FleetMetrics fed from decoded batches, read back through the worker's /metrics text."""

from __future__ import annotations

import orjson
from prometheus_client.parser import text_string_to_metric_families

from schemas.decode import decode_columns
from stream.config import LlmwatchConfig
from stream.metrics import WorkerMetrics, group_ids
from stream.worker.engines import EnginePool
from stream.worker.ingest import BatchProcessor

NOW = 1_717_401_700.0


def _event(i: int, gateway: str, status: str, latency: float) -> bytes:
    return orjson.dumps(
        {
            "kind": "inference",
            "ts": "2024-06-03T08:00:00Z",
            "gateway": gateway,
            "model": "llama-3-8b",
            "model_version": "v1",
            "request_id": f"r-{i}",
            "status": status,
            "latency_ms": latency,
        }
    )


def _gpu(temp: float, reasons: int, xid: int | None) -> bytes:
    body = {
        "kind": "gpu",
        "ts": "2024-06-03T08:00:00Z",
        "host": "node-1",
        "gpu_index": 0,
        "gpu_uuid": "GPU-1",
        "temp_c": temp,
        "sm_util_pct": 50.0,
        "mem_util_pct": 40.0,
        "mem_used_mib": 1000.0,
        "mem_total_mib": 80000.0,
        "power_w": 300.0,
        "power_limit_w": 700.0,
        "sm_clock_mhz": 1980.0,
        "clocks_event_reasons": reasons,
    }
    if xid is not None:
        body["xid"] = xid
    return orjson.dumps(body)


def _samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(metrics.render().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_group_ids_are_dense_in_first_seen_order() -> None:
    import numpy as np

    a = np.array(["x", "y", "x", None], dtype=object)
    b = np.array(["1", "1", "1", "2"], dtype=object)
    ids, groups = group_ids(a, b)
    assert ids.tolist() == [0, 1, 0, 2]
    assert groups == [("x", "1"), ("y", "1"), ("", "2")]


def test_inference_batch_feeds_requests_and_latency_quantiles() -> None:
    metrics = WorkerMetrics()
    proc = BatchProcessor(EnginePool(LlmwatchConfig()), metrics, clock=lambda: NOW)
    raws = [_event(i, "gw-a", "ok", 100.0 + i) for i in range(99)]
    raws += [_event(99, "gw-a", "error", 5000.0), _event(100, "gw-b", "ok", 7.0)]
    proc.process(kind="inference", topic="llmwatch.inference", partition=0, raws=raws)
    got = _samples(metrics)
    base = (("gateway", "gw-a"), ("model", "llama-3-8b"), ("model_version", "v1"))

    def req(gateway: str, status: str) -> float:
        labels = dict(base, gateway=gateway, status=status)
        return got[("llmwatch_fleet_requests_total", tuple(sorted(labels.items())))]

    assert req("gw-a", "ok") == 99
    assert req("gw-a", "error") == 1
    assert req("gw-b", "ok") == 1

    def lat(gateway: str, q: str) -> float:
        labels = dict(base, gateway=gateway, metric="latency", quantile_level=q)
        return got[("llmwatch_fleet_latency_seconds", tuple(sorted(labels.items())))]

    assert lat("gw-a", "0.5") == 0.1495  # median of 100..198 and 5000 ms (100 values)
    assert 0.1935 < lat("gw-a", "0.95") < 0.1945  # 0.95 * 99 = rank 94.05: 194.05 ms
    assert lat("gw-a", "0.99") > 0.198
    assert lat("gw-b", "0.5") == 0.007


def test_gpu_batch_keeps_last_sample_counts_xids_and_flags_throttling() -> None:
    metrics = WorkerMetrics()
    cols, bad = decode_columns(
        [_gpu(60.0, 0, None), _gpu(71.0, 0x40, 79), _gpu(72.0, 0x40, 79)], kind="gpu", now=NOW
    )
    assert not bad
    metrics.fleet.observe(cols)
    got = _samples(metrics)
    dev = (("gpu_uuid", "GPU-1"), ("host", "node-1"))
    assert got[("llmwatch_fleet_gpu_temperature_celsius", dev)] == 72.0
    assert got[("llmwatch_fleet_gpu_utilization_ratio", dev)] == 0.5
    assert got[("llmwatch_fleet_gpu_memory_used_bytes", dev)] == 1000.0 * 2**20
    assert got[("llmwatch_fleet_gpu_sm_clock_hertz", dev)] == 1980e6
    assert got[("llmwatch_fleet_gpu_xid_errors_total", dev)] == 2
    assert got[("llmwatch_fleet_gpu_throttled", dev)] == 1
