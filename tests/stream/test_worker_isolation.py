"""One message the engine fails on costs only itself: retry once, bisect, dead-letter it.

A detector that raises half-way through an update has already learned part of the
batch; these tests check that after the retry and the bisection every other row is
in the state exactly once (no double counting) and the poison rows are dead-lettered
with their offsets and the reason.
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pytest

from detectors.base import Detector, DetectorConfig, DetectorOutput
from schemas.columns import MetricColumns
from schemas.models import DeadLetter
from stream.config import LlmwatchConfig
from stream.metrics import WorkerMetrics
from stream.worker.engines import EnginePool
from stream.worker.ingest import BatchProcessor

T0 = 1_717_243_200.0
POISON = 666.0


class Boom(ValueError):
    pass


class CountingConfig(DetectorConfig):
    label: str = "counting"


class Counting(Detector[MetricColumns]):
    """Adds every row to its state, then raises if the batch holds a poison value: the
    partial update a real detector bug leaves behind. ``name`` is None on the class so
    detector discovery never registers it."""

    name = None  # type: ignore[assignment]
    consumes = MetricColumns
    Config = CountingConfig
    transient = 0  # class-wide: raise this many more times, whatever the rows

    def __init__(self, config: DetectorConfig | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        self.name = "counting"  # type: ignore[misc]
        self.rows = 0
        self.total = 0.0

    def update(self, batch: MetricColumns) -> DetectorOutput:
        v = np.asarray(batch.value, dtype=np.float64)
        self.rows += len(v)
        self.total += float(v.sum())
        if Counting.transient > 0:
            Counting.transient -= 1
            raise MemoryError("transient")
        if (v == POISON).any():
            raise Boom("cannot score a value of 666")
        return DetectorOutput(np.zeros(len(v)), [])

    @classmethod
    def restore(cls, data: bytes) -> Counting:
        import pickle

        payload = pickle.loads(data)
        det = cls(**payload["params"])
        det.set_state(payload["state"])
        return det


@pytest.fixture(autouse=True)
def _counting_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("stream.engine.build_detectors", lambda cfg: [Counting()])
    Counting.transient = 0


def _msg(i: int, value: float) -> bytes:
    ts = datetime.fromtimestamp(T0 + i, UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"kind": "metric", "ts": ts, "name": f"s{i % 3}", "value": value})


def _processor() -> tuple[BatchProcessor, WorkerMetrics]:
    metrics = WorkerMetrics()
    pool = EnginePool(LlmwatchConfig())
    return BatchProcessor(pool, metrics, clock=lambda: T0 + 10_000), metrics


def _state(proc: BatchProcessor) -> Counting:
    det = proc.pool.engines[0].detectors[0]
    assert isinstance(det, Counting)
    return det


def _offset(dead: DeadLetter) -> int:
    assert dead.offset is not None  # a row the engine failed on was consumed at an offset
    return dead.offset


def _value(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    got = metrics.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def test_poison_rows_are_dead_lettered_and_every_other_row_counted_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    proc, metrics = _processor()
    values = [float(i) for i in range(100)]
    values[37] = values[80] = POISON
    raws = [_msg(i, v) for i, v in enumerate(values)]
    raws.insert(50, b"not json")  # a decode reject in between shifts the row numbers
    offsets = list(range(1000, 1000 + len(raws)))
    with caplog.at_level(logging.WARNING, logger="llmwatch.worker"):
        out = proc.process(kind="metric", topic="m", partition=0, raws=raws, offsets=offsets)
    assert out.accepted == 98
    engine_dead = [d for d in out.dead_letters if d.reason.startswith("engine:")]
    assert sorted(_offset(d) for d in engine_dead) == [1037, 1081]
    assert all("Boom: cannot score a value of 666" in d.reason for d in engine_dead)
    assert {base64.b64decode(d.raw_b64) for d in engine_dead} == {raws[37], raws[81]}
    det = _state(proc)
    good = [v for v in values if v != POISON]
    assert (det.rows, det.total) == (98, sum(good))  # once each, never twice
    assert _value(metrics, "llmwatch_poison_messages_total", topic="m", stage="engine") == 2
    assert _value(metrics, "llmwatch_engine_batch_failures_total", topic="m", outcome="bisected")
    poison_logs = [r for r in caplog.records if r.getMessage().startswith("poison message")]
    assert [r.levelno for r in poison_logs] == [logging.WARNING] * 2
    assert "m/0@1037" in poison_logs[0].getMessage()


def test_a_transient_failure_is_retried_once_on_a_rebuilt_engine() -> None:
    proc, metrics = _processor()
    raws = [_msg(i, 1.0) for i in range(10)]
    proc.process(kind="metric", topic="m", partition=0, raws=raws)
    Counting.transient = 1
    out = proc.process(kind="metric", topic="m", partition=0, raws=raws)
    assert out.dead_letters == [] and out.accepted == 10
    assert _state(proc).rows == 20  # the failed attempt's 10 rows are not in the state
    assert _value(metrics, "llmwatch_engine_batch_failures_total", topic="m", outcome="retried")


def test_rebuild_replays_checkpoint_plus_the_steps_since_it() -> None:
    proc, _ = _processor()
    proc.process(kind="metric", topic="m", partition=0, raws=[_msg(i, 2.0) for i in range(5)])
    pool = proc.pool
    pool.saved(0, T0, pool.engines[0].snapshot())  # a checkpoint: 5 rows in the snapshot
    proc.process(kind="metric", topic="m", partition=0, raws=[_msg(i, 3.0) for i in range(4)])
    pool.engines[0].advance(T0 + 100)
    pool.journal.advanced(0, T0 + 100)
    bad = [_msg(i, 1.0) for i in range(6)] + [_msg(6, POISON)]
    out = proc.process(kind="metric", topic="m", partition=0, raws=bad, offsets=list(range(7)))
    assert [d.offset for d in out.dead_letters] == [6]
    det = _state(proc)
    assert (det.rows, det.total) == (5 + 4 + 6, 10.0 + 12.0 + 6.0)
    assert pool.engines[0].watermark >= T0 + 100


def test_a_batch_that_always_fails_costs_its_rows_not_the_worker() -> None:
    proc, metrics = _processor()
    raws = [_msg(i, POISON) for i in range(8)]
    out = proc.process(kind="metric", topic="m", partition=0, raws=raws, offsets=list(range(8)))
    assert sorted(_offset(d) for d in out.dead_letters) == list(range(8))
    assert out.accepted == 0 and _state(proc).rows == 0
    assert _value(metrics, "llmwatch_poison_messages_total", topic="m", stage="engine") == 8
    # The next batch is processed as usual.
    out = proc.process(kind="metric", topic="m", partition=0, raws=[_msg(9, 1.0)])
    assert out.accepted == 1 and _state(proc).rows == 1


def test_decode_poison_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    proc, metrics = _processor()
    base = b'{"kind":"metric","ts":"2024-06-01T11:00:00Z","name":"s","value":1,"labels":'
    deep = base + b"[" * 1000 + b"]" * 1000 + b"}"
    with caplog.at_level(logging.WARNING, logger="llmwatch.worker"):
        out = proc.process(kind="metric", topic="m", partition=0, raws=[deep, _msg(1, 1.0)])
    assert out.accepted == 1 and len(out.dead_letters) == 1
    # An ordinary invalid message is a reject; one whose decoding raised is poison too.
    poison = _value(metrics, "llmwatch_poison_messages_total", topic="m", stage="decode")
    logged = [r for r in caplog.records if r.getMessage().startswith("poison message")]
    assert poison == len(logged)


def test_a_tick_that_raises_is_logged_and_the_partition_rebuilt(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [T0 + 10_000]
    metrics = WorkerMetrics()
    proc = BatchProcessor(EnginePool(LlmwatchConfig()), metrics, clock=lambda: clock[0])
    proc.process(kind="metric", topic="m", partition=0, raws=[_msg(i, 1.0) for i in range(3)])

    def broken(self: Counting, now: float) -> list[Any]:
        self.rows += 1000  # a half-done tick must not stay in the state
        raise Boom("tick")

    monkeypatch.setattr(Counting, "tick", broken)
    clock[0] += 60
    with caplog.at_level(logging.ERROR, logger="llmwatch.worker"):
        assert proc.advance_idle() == []
    assert "advancing event time failed" in caplog.text
    assert _value(metrics, "llmwatch_engine_batch_failures_total", topic="", outcome="tick") == 1
    assert _state(proc).rows == 3
