"""Upgrade warm-up: a detector restored fresh re-learns from the source topic's history,
without paging again (stream.worker.warmup)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.models import MetricSample, dump_json
from stream.config import LlmwatchConfig
from stream.engine import Engine
from stream.metrics import WorkerMetrics
from stream.worker.engines import EnginePool
from stream.worker.warmup import HistoryWarmup, read_history, warm_up

SNAP = Path(__file__).parents[1] / "detectors" / "snapshots" / "engine_v1.snapshot"
T0 = 1_700_000_000.0
NOW = T0 + 20_000.0  # wall time at the takeover: after the history


def _metric_history(n: int, *, spike_at: int | None = None, t0: float = T0) -> list[bytes]:
    """``n`` samples of one gauge every 10 s, flat with noise; a spike at ``spike_at``."""
    out = []
    for i in range(n):
        value = 100.0 + (i % 7) - 3.0
        if spike_at is not None and i >= spike_at:
            value = 10_000.0
        sample = MetricSample(
            ts=datetime.fromtimestamp(t0 + 10.0 * i, UTC),
            name="vllm_num_requests_waiting",
            labels={"host": "gpu-1"},
            value=value,
        )
        out.append(dump_json(sample))
    return out


def _restored() -> Engine:
    eng = Engine.restore(SNAP.read_bytes())
    assert set(eng.fresh_detectors) == {"series"}
    return eng


def _series(eng: Engine) -> Any:
    return next(d for d in eng.detectors if d.name == "series")


def _batches(raws: Sequence[bytes], size: int = 500) -> list[Sequence[bytes]]:
    return [raws[i : i + size] for i in range(0, len(raws), size)]


def test_warm_up_teaches_only_the_fresh_detector() -> None:
    eng = _restored()
    before = {d.name: d.snapshot() for d in eng.detectors if d.name != "series"}
    series = _series(eng)
    assert series.active_series() == 0
    raws = _metric_history(1200, spike_at=1100)
    res = warm_up([series], [("metric", b) for b in _batches(raws)], max_rows=10**6, now=NOW)
    assert res.rows == {"series": 1200}
    assert not res.capped and res.rejected == 0
    assert series.active_series() == 1
    assert float(series.st.sum()) != 0.0  # learned something per series
    # The other detectors did not see the history (they already hold it).
    assert {d.name: d.snapshot() for d in eng.detectors if d.name != "series"} == before


def test_warm_up_stops_at_max_rows_and_zero_reads_nothing() -> None:
    raws = _metric_history(300)
    seen: list[int] = []

    def batches() -> Iterable[tuple[str, Sequence[bytes]]]:
        for b in _batches(raws, 100):
            seen.append(len(b))
            yield ("metric", b)

    series = _series(_restored())
    res = warm_up([series], batches(), max_rows=150, now=NOW)
    assert res.rows == {"series": 150} and res.capped
    assert seen == [100, 100]  # stopped reading once the cap was reached
    nothing = warm_up([_series(_restored())], batches(), max_rows=0, now=NOW)
    assert nothing.rows == {"series": 0} and nothing.capped


def test_warm_up_counts_undecodable_history_and_skips_other_kinds() -> None:
    series = _series(_restored())
    raws = [*_metric_history(20), b"{not json"]
    res = warm_up([series], [("metric", raws), ("gpu", [b"{}"])], max_rows=100, now=NOW)
    assert res.rows == {"series": 20}
    assert res.rejected == 2


def _pool(
    raws: list[bytes], max_rows: int, metrics: WorkerMetrics
) -> tuple[EnginePool, list[tuple[str, int, int, int]]]:
    calls: list[tuple[str, int, int, int]] = []

    def read(topic: str, partition: int, end: int, limit: int) -> Iterable[Sequence[bytes]]:
        calls.append((topic, partition, end, limit))
        return _batches(raws[max(0, end - limit) : end])

    pool = EnginePool(LlmwatchConfig())
    pool.warm = HistoryWarmup(
        read,
        {"llm.metrics": "metric", "llm.inference": "inference"},
        lambda p: {"llm.metrics": len(raws) - 1, "llm.inference": 41},
        max_rows=max_rows,
        counter=metrics.warmup_rows,
        clock=lambda: NOW,
    )
    return pool, calls


def test_worker_pool_warms_a_restored_engine_without_alerts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = WorkerMetrics()
    raws = _metric_history(900, spike_at=800)
    pool, calls = _pool(raws, 10**6, metrics)
    plain = Engine.restore(SNAP.read_bytes())
    with caplog.at_level(logging.INFO, logger="llmwatch.worker"):
        eng = pool.get(3, lambda p: SNAP.read_bytes(), wall=T0)
    # Only the topic the fresh detector consumes, up to the snapshot's offset.
    assert calls == [("llm.metrics", 3, 900, 10**6)]
    assert _series(eng).active_series() == 1
    # History pages nothing: the lifecycle holds exactly what the snapshot held.
    assert [a.fingerprint for a in eng.lifecycle.active_alerts()] == [
        a.fingerprint for a in plain.lifecycle.active_alerts()
    ]
    assert "warming up detectors series" in caplog.text
    assert "rows re-learned {'series': 900}" in caplog.text
    text = metrics.render().decode()
    assert 'llmwatch_warmup_rows_total{detector="series"} 900.0' in text
    # A rebuild after a failed step starts from the warmed state, not the snapshot.
    assert _series(pool.rebuild(3)).active_series() == 1
    # What /healthz shows: the partition's last warm-up, rows per detector and its time.
    assert isinstance(pool.warm, HistoryWarmup)
    shown = pool.warm.last[3].summary()
    assert shown["rows"] == {"series": 900} and shown["capped"] is False
    assert shown["undecodable"] == 0 and shown["seconds"] > 0


def test_a_failing_history_read_leaves_the_partition_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(topic: str, partition: int, end: int, limit: int) -> Iterable[Sequence[bytes]]:
        raise RuntimeError("broker gone")

    pool = EnginePool(LlmwatchConfig())
    pool.warm = HistoryWarmup(
        broken, {"m": "metric"}, lambda p: {"m": 5}, max_rows=10, clock=lambda: NOW
    )
    with caplog.at_level(logging.ERROR, logger="llmwatch.worker"):
        eng = pool.get(0, lambda p: SNAP.read_bytes(), wall=T0)
    assert _series(eng).active_series() == 0
    assert "warm-up from history failed" in caplog.text
    assert 0 in pool.restored


def test_read_history_on_the_embedded_broker(embedded_broker: str, topic_name: str) -> None:
    """A real broker: history is read from the low watermark up to (not past) the
    snapshot's offset, or only the newest ``limit`` messages before it."""
    from confluent_kafka import Producer

    raws = _metric_history(1000)
    producer = Producer({"bootstrap.servers": embedded_broker})
    for raw in raws:
        producer.produce(topic_name, value=raw, partition=1)
    assert producer.flush(10.0) == 0
    read = read_history({"bootstrap.servers": embedded_broker}, stall_s=5.0, fetch=128)
    got = [m for b in read(topic_name, 1, 700, 10**6) for m in b]
    assert got == raws[:700]
    newest = [m for b in read(topic_name, 1, 700, 50) for m in b]
    assert newest == raws[650:700]
    assert [m for b in read(topic_name, 1, 5000, 10**6) for m in b] == raws  # up to the end

    # End to end: the worker's hook over the broker warms the restored engine.
    metrics = WorkerMetrics()
    pool = EnginePool(LlmwatchConfig())
    pool.warm = HistoryWarmup(
        read,
        {topic_name: "metric"},
        lambda p: {topic_name: 599},
        max_rows=10**6,
        counter=metrics.warmup_rows,
        clock=lambda: NOW,
    )
    eng = pool.get(1, lambda p: SNAP.read_bytes(), wall=T0)
    assert _series(eng).active_series() == 1
    assert 'llmwatch_warmup_rows_total{detector="series"} 600.0' in metrics.render().decode()
    assert orjson.loads(raws[0])["name"] == "vllm_num_requests_waiting"
