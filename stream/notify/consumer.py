"""The alerts-topic consumer: manual commits of finished offsets, pause when the window fills."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from .offsets import OffsetBook

log = logging.getLogger("llmwatch.notify")


class AlertConsumer:
    """One confluent-kafka consumer in the notifier's group; all its calls on one thread."""

    def __init__(self, conf: dict[str, str], topic: str, group: str) -> None:
        self.topic = topic
        self.book = OffsetBook()
        # The rebalance callbacks run on the consumer thread; the book is shared with the loop.
        self.lock = threading.Lock()
        self._consumer = Consumer(
            {
                **conf,
                "group.id": group,
                "enable.auto.commit": "false",
                "auto.offset.reset": "earliest",
                "log.connection.close": "false",
                # Bounds what librdkafka prefetches while deliveries are stuck.
                "queued.max.messages.kbytes": "8192",
            }
        )
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="notify-alerts")
        self._paused = False
        self.assigned: set[int] = set()
        # Partitions assigned without a committed offset -> where their history ends.
        self.history_end: dict[int, int] = {}
        # Partitions taken away since the service last looked (another replica owns them).
        self.revoked: set[int] = set()

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _on_assign(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        self.assigned.update(tp.partition for tp in parts)
        fresh = self._history(consumer, parts)
        with self.lock:
            self.history_end.update(fresh)
        self._paused = False  # new partitions arrive unpaused; the loop re-checks
        log.info("alerts: assigned partitions %s", sorted(tp.partition for tp in parts))

    @staticmethod
    def _history(consumer: Consumer, parts: list[TopicPartition]) -> dict[int, int]:
        """Partitions this group never committed on, and their end offset right now."""
        try:
            committed = consumer.committed(parts, timeout=10.0)
        except KafkaException as exc:
            # Unknown: read as a restart (deliver what comes); the ledger dedups.
            log.warning("alerts: committed offsets unknown (%s); no catch-up", exc)
            return {}
        out: dict[int, int] = {}
        for tp in committed:
            if tp.offset >= 0:
                continue
            try:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), timeout=10.0, cached=False
                )
            except KafkaException:
                continue
            out[tp.partition] = high
        return out

    def _on_revoke(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        # Commit what is finished before another instance takes these partitions over.
        self._commit_now()
        with self.lock:
            for tp in parts:
                self.book.revoke(tp.partition)
                self.assigned.discard(tp.partition)
                self.revoked.add(tp.partition)

    async def start(self) -> None:
        def subscribe() -> None:
            self._consumer.subscribe(
                [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke
            )

        await self._call(subscribe)

    async def poll(self, limit: int = 200, timeout_s: float = 0.2) -> list[Message]:
        msgs: list[Message] = await self._call(self._consumer.consume, limit, timeout_s)
        return msgs

    def _commit_now(self) -> None:
        with self.lock:
            positions = self.book.to_commit()
        if not positions:
            return
        offsets = [TopicPartition(self.topic, p, pos) for p, pos in positions.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Not fatal: the next commit names the same or a later position.
            log.warning("alerts: commit failed: %s", exc)
            return
        with self.lock:
            self.book.committed(positions)

    async def commit(self) -> None:
        await self._call(self._commit_now)

    async def window(self, in_flight: int, limit: int) -> bool:
        """Pause at ``limit`` alerts in flight, resume below half; True while paused."""
        if in_flight >= limit and not self._paused:
            await self._call(lambda: self._consumer.pause(self._consumer.assignment()))
            self._paused = True
            log.warning("alerts: %d deliveries in flight; pausing consumption", in_flight)
        elif self._paused and in_flight <= limit // 2:
            await self._call(lambda: self._consumer.resume(self._consumer.assignment()))
            self._paused = False
            log.info("alerts: resuming consumption")
        return self._paused

    def lag(self) -> dict[int, int]:
        """Messages between the committed position and the high watermark, per partition."""
        out: dict[int, int] = {}
        for p in sorted(self.assigned):
            tp = TopicPartition(self.topic, p)
            try:
                _, high = self._consumer.get_watermark_offsets(tp, timeout=1.0, cached=False)
                pos = self._consumer.position([tp])[0].offset
            except KafkaException:
                continue
            if pos >= 0:
                out[p] = max(0, high - pos)
        return out

    async def lag_async(self) -> dict[int, int]:
        result: dict[int, int] = await self._call(self.lag)
        return result

    async def close(self) -> None:
        await self._call(self._commit_now)
        await self._call(self._consumer.close)
        self._pool.shutdown(wait=True)
