"""Shared fixtures: one embedded Kafka-protocol broker per test session, and readers for it.

``embedded_broker`` is the bootstrap address ("127.0.0.1:PORT") of librdkafka's mock
cluster (see ``stream.broker``). Topics auto-create with 4 partitions. Use
``topic_name`` for a fresh topic per test and ``consume_all`` to read it back.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def read_topic(
    bootstrap: str, topic: str, expected: int | None = None, timeout_s: float = 10.0
) -> list[Record]:
    """Every message on ``topic`` from the beginning, in (partition, offset) order.

    Reads up to each partition's high watermark at call time; with ``expected`` it
    keeps polling (bounded by ``timeout_s``) until that many have arrived.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "log.connection.close": False,
        }
    )
    deadline = time.monotonic() + timeout_s
    out: list[Record] = []
    try:
        parts: list[int] = []
        while not parts and time.monotonic() < deadline:
            try:
                meta = consumer.list_topics(topic, timeout=max(0.1, deadline - time.monotonic()))
            except KafkaException:
                continue  # broker not reachable yet: retry until the deadline
            tmeta = meta.topics.get(topic)
            if tmeta is not None and tmeta.error is None:
                parts = sorted(tmeta.partitions)
        if not parts:
            return out
        highs = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5.0)[1]
            for p in parts
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        got: dict[int, int] = dict.fromkeys(parts, 0)

        def done() -> bool:
            if expected is not None:
                return len(out) >= expected
            return all(got[p] >= highs[p] for p in parts)

        while not done() and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.2):
                if msg.error():
                    continue
                partition, offset = msg.partition(), msg.offset()
                assert partition is not None and offset is not None  # a consumed message has both
                out.append(Record(topic, partition, offset, msg.key(), msg.value() or b""))
                got[partition] = offset + 1
    finally:
        consumer.close()
    out.sort(key=lambda r: (r.partition, r.offset))
    return out


@pytest.fixture(scope="session")
def embedded_broker() -> Iterator[str]:
    from stream.broker import EmbeddedBroker

    with EmbeddedBroker() as bootstrap:
        yield bootstrap


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name no other test uses (the session broker is shared)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:80]
    return f"test.{stem}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def consume_all(embedded_broker: str) -> Callable[..., list[Record]]:
    """``consume_all(topic, expected=None, timeout_s=10.0)`` against the session broker."""

    def consume(topic: str, expected: int | None = None, timeout_s: float = 10.0) -> list[Record]:
        return read_topic(embedded_broker, topic, expected, timeout_s)

    return consume
