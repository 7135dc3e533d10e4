"""Loss is loud: a worker that lags more than a partition's retention is told so.

The embedded broker keeps only the last few MB of each partition. A worker stops
with its snapshot and commits at offset 200; meanwhile ~20 MB more arrive, so when
it comes back offset 200 is gone and the consumer jumps to the oldest offset left.
The worker must say how many messages it skipped: a WARNING line, the
``llmwatch_offsets_skipped_total`` counter and /healthz ``offsets_skipped``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from stream.broker import EmbeddedBroker
from stream.settings import Settings
from tests.integration.workerkit import WorkerProc, metric_sum, wait_for

pytestmark = pytest.mark.integration

T0 = datetime(2024, 6, 3, 8, 0, tzinfo=UTC).timestamp()
FIRST = 200
FLOOD = 60_000  # ~21 MB: far past what the mock keeps of one partition


@pytest.fixture
def broker() -> Iterator[str]:
    # A private broker: the consumer group and partition 0 are this test's alone.
    with EmbeddedBroker() as bootstrap:
        yield bootstrap


def _event(i: int) -> bytes:
    ts = datetime.fromtimestamp(T0 + i * 0.01, UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps(
        {
            "kind": "inference",
            "ts": ts,
            "gateway": "gw-us-east",
            "model": "llama-3-8b",
            "model_version": "v1",
            "request_id": f"r-{i:08d}-" + "x" * 100,
            "status": "ok",
            "latency_ms": 100.0 + i % 7,
        }
    )


def _produce(bootstrap: str, topic: str, start: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "log_level": 3})
    for i in range(start, start + count):
        while True:
            try:
                producer.produce(topic, value=_event(i), partition=0)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(30) == 0


def _committed(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "llmwatch", "log_level": 3})
    try:
        got = consumer.committed([TopicPartition(topic, 0)], timeout=5)[0].offset
        return int(got)
    finally:
        consumer.close()


def _low(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "marks", "log_level": 3})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[0])
    finally:
        consumer.close()


def test_offsets_lost_to_retention_are_logged_counted_and_shown(
    broker: str, tmp_path: Path
) -> None:
    topic = Settings().topic_inference
    env = {
        **os.environ,
        "LLMWATCH_BOOTSTRAP_SERVERS": broker,
        "LLMWATCH_STORE": "memory://",
        "LLMWATCH_STATE_DIR": str(tmp_path / "state"),
    }
    args = ("--checkpoint-interval", "1")
    first = WorkerProc(env=env, log=tmp_path / "w1.log", args=args).start()
    second = WorkerProc(env=env, log=tmp_path / "w2.log", args=args)
    try:
        first.wait_healthy()
        _produce(broker, topic, 0, FIRST)
        # Commits trail by one snapshot; a quiet partition is saved again and catches up.
        wait_for(lambda: _committed(broker, topic) == FIRST, 60, "offsets committed", first)
        first.stop()
        _produce(broker, topic, FIRST, FLOOD)
        low = _low(broker, topic)
        assert low > FIRST, "the broker kept everything: the test proves nothing"
        second.start().wait_healthy()
        key = f"{topic}/0"

        def reported() -> bool:
            health = second.healthz() or {}
            return key in health.get("offsets_skipped", {})

        wait_for(reported, 60, "offsets_skipped on /healthz", second)
        skipped = (second.healthz() or {})["offsets_skipped"][key]
        assert skipped == low - FIRST  # exactly the messages retention deleted unread
        assert metric_sum(second.port, "llmwatch_offsets_skipped_total") == skipped
        assert metric_sum(second.port, "llmwatch_offset_resets_total") == 1
        lines = [ln for ln in second.tail(200_000).splitlines() if "deleted by retention" in ln]
        assert len(lines) == 1 and "WARNING" in lines[0]
        assert f"offsets {FIRST}..{low - 1}" in lines[0] and f"{skipped} messages" in lines[0]
    finally:
        first.kill()
        second.stop()
