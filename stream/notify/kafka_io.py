"""The notifier's Kafka clients: a producer (silences, dead letters) and the silences reader.

confluent-kafka calls block, so each client runs them on its own single thread:
the event loop never blocks, and one client is never used from two threads at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

log = logging.getLogger("llmwatch.notify")


class KafkaIOError(RuntimeError):
    """The broker did not take a write, or a topic could not be read."""


class AsyncProducer:
    def __init__(self, conf: dict[str, str]) -> None:
        self._producer = Producer(
            {**conf, "enable.idempotence": "false", "acks": "all", "log.connection.close": "false"}
        )
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="notify-producer")

    def _send(self, topic: str, key: bytes, value: bytes | None, timeout_s: float) -> None:
        errors: list[str] = []

        def done(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err.str()))

        self._producer.produce(topic, key=key, value=value, on_delivery=done)
        left = self._producer.flush(timeout_s)
        if left or errors:
            raise KafkaIOError(f"write to {topic} failed: {errors[0] if errors else 'timed out'}")

    async def send(
        self, topic: str, key: bytes, value: bytes | None, timeout_s: float = 10.0
    ) -> None:
        """Write one record and wait until the broker has it."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._send, topic, key, value, timeout_s)

    def produce_nowait(self, topic: str, key: bytes, value: bytes | None) -> None:
        """Queue one record without waiting (shared notifier state: best effort, logged)."""

        def done(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                log.warning("write to %s failed: %s", topic, err.str())

        try:
            self._producer.produce(topic, key=key, value=value, on_delivery=done)
            self._producer.poll(0)
        except (BufferError, KafkaException) as exc:
            log.warning("write to %s not queued: %s", topic, exc)

    def ensure_topic(self, topic: str, timeout_s: float = 10.0) -> list[int]:
        """Partition ids of ``topic`` (a metadata request auto-creates it where allowed)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                meta = self._producer.list_topics(topic, timeout=1.0).topics.get(topic)
                if meta is not None and meta.error is None and meta.partitions:
                    return sorted(meta.partitions)
            except KafkaException:
                pass
            if time.monotonic() >= deadline:
                raise KafkaIOError(f"topic {topic} is not available")

    def close(self) -> None:
        self._producer.flush(5.0)
        self._pool.shutdown(wait=True)
        # Destroy the client now: a live one keeps reconnecting to a broker that is gone.
        del self._producer


Apply = Callable[[str, bytes | None], None]


class TopicFollower:
    """Reads a whole (compacted) topic from the beginning, then keeps following it."""

    def __init__(self, conf: dict[str, str], topic: str, partitions: list[int]) -> None:
        self._consumer = Consumer(
            {
                **conf,
                # Assigned, never subscribed: the group id is only a label here.
                "group.id": f"llmwatch-notify-silences-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": "false",
                "log.connection.close": "false",
            }
        )
        self._topic = topic
        self._partitions = partitions
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="notify-silences")
        self._stopping = False

    def _drain(self, timeout_s: float) -> list[tuple[str, bytes | None]]:
        tps = [TopicPartition(self._topic, p) for p in self._partitions]
        highs = {
            tp.partition: self._consumer.get_watermark_offsets(tp, timeout=timeout_s)[1]
            for tp in tps
        }
        self._consumer.assign(
            [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in self._partitions]
        )
        at = dict.fromkeys(self._partitions, 0)
        out: list[tuple[str, bytes | None]] = []
        deadline = time.monotonic() + timeout_s
        while any(at[p] < highs[p] for p in self._partitions):
            if time.monotonic() >= deadline:
                raise KafkaIOError(f"could not read {self._topic} to its end in {timeout_s:g} s")
            for msg in self._consumer.consume(500, timeout=0.2):
                if msg.error():
                    continue
                at[msg.partition() or 0] = (msg.offset() or 0) + 1
                out.append((_key(msg.key()), msg.value()))
        return out

    async def load(self, apply: Apply, timeout_s: float = 30.0) -> int:
        """Apply every record up to the end as of now; returns how many."""
        loop = asyncio.get_running_loop()
        records = await loop.run_in_executor(self._pool, self._drain, timeout_s)
        # Applied here, on the event loop: ``apply`` may start tasks.
        for key, value in records:
            _apply_one(apply, key, value)
        return len(records)

    def _poll(self) -> list[tuple[str, bytes | None]]:
        out = []
        for msg in self._consumer.consume(500, timeout=0.2):
            if not msg.error():
                out.append((_key(msg.key()), msg.value()))
        return out

    async def follow(self, apply: Apply) -> None:
        """Apply new records as they arrive, until ``stop``."""
        loop = asyncio.get_running_loop()
        while not self._stopping:
            for key, value in await loop.run_in_executor(self._pool, self._poll):
                _apply_one(apply, key, value)

    def stop(self) -> None:
        self._stopping = True

    def close(self) -> None:
        self._stopping = True
        self._pool.submit(self._consumer.close).result()
        self._pool.shutdown(wait=True)


def _key(raw: bytes | None) -> str:
    return raw.decode("utf-8", errors="replace") if raw else ""


def _apply_one(apply: Apply, key: str, value: bytes | None) -> None:
    """One record of the compacted topic never stops the notifier: it is re-read at
    every start, so a record that raised would stop every start after it too. The
    parsers skip and count what they know to be bad; anything else is logged here."""
    try:
        apply(key, value)
    except Exception:
        log.exception("silences topic: record %r could not be applied; skipped", key[:80])
