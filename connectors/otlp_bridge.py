"""OTLP GenAI spans (the Collector's Kafka exporter topic) -> ``InferenceEvent``s on
``llmwatch.inference``, keyed by model.

Why a bridge in front of the worker rather than another worker source: a worker keeps
one engine per partition and needs all of a model's events on one partition
(``schemas.keys``), while the Collector's exporter partitions by trace id, or not at
all. The bridge decodes each batch (``schemas.otlp``: spans -> events through the same
columnar checks as JSON events), re-keys the events by model, and the worker reads them
as any gateway's events. Bridges scale out in their own consumer group.

Nothing is lost silently: a payload that does not decode, and one whose GenAI spans
are partly invalid, goes to the dead-letter topic with the reason (the valid spans of
the latter are published); non-GenAI spans are counted in ``stats.skipped``. Delivery
is at least once: a batch's offsets are committed only after the broker acknowledged
every event and dead letter of it; if any was not, ``BridgeError`` stops the bridge
uncommitted, and a restart reads the batch again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.kafka import KeyedProducer
from schemas.decode import to_dead_letter
from schemas.otlp import ENCODINGS, decode_otlp

DEFAULT_SOURCE_TOPIC = "otlp_spans"  # the Collector's Kafka exporter default
DEFAULT_GROUP = "llmwatch-otlp-bridge"


class BridgeError(RuntimeError):
    """The broker did not take a batch's output; its offsets were not committed."""


@dataclass
class BridgeStats:
    messages: int = 0
    spans: int = 0
    events: int = 0  # published to the inference topic
    skipped: int = 0  # spans that are not GenAI inferences
    invalid_spans: int = 0
    dead_lettered: int = 0  # messages
    produce_failures: int = 0  # events and dead letters failed or unacknowledged
    last_commit: float = 0.0  # clock() of the last offset commit; 0: none yet
    # Messages on the source topic not yet consumed, summed over the assigned partitions
    # (high watermark of the last fetch minus position); -1: not known yet.
    lag: int = -1


class OtlpBridge:
    """``poll_once`` is one batch; ``run`` loops until stopped."""

    def __init__(
        self,
        client: Mapping[str, str],
        *,
        source_topic: str = DEFAULT_SOURCE_TOPIC,
        encoding: str = "otlp_proto",
        inference_topic: str = "llmwatch.inference",
        deadletter_topic: str = "llmwatch.deadletter",
        group: str = DEFAULT_GROUP,
        clock: Callable[[], float] = time.time,
        consumer_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding: expected one of {ENCODINGS}, got {encoding!r}")
        from confluent_kafka import Consumer

        self.encoding = encoding
        self.inference_topic = inference_topic
        self.deadletter_topic = deadletter_topic
        self.clock = clock
        self.stats = BridgeStats()
        self.running = False  # the consume loop is live (/healthz)
        conf: dict[str, Any] = {
            **client,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **(consumer_overrides or {}),
        }
        self._consumer = Consumer(conf)
        self._consumer.subscribe([source_topic])
        self._producer = KeyedProducer(
            client, {"linger.ms": 20, "queue.buffering.max.messages": 1_000_000}
        )

    def poll_once(self, max_messages: int = 200, timeout_s: float = 1.0) -> int:
        """Consume up to ``max_messages``, publish their events and dead letters, commit."""
        msgs = [m for m in self._consumer.consume(max_messages, timeout_s) if not m.error()]
        if not msgs:
            self.stats.lag = self._lag()
            return 0
        now = self.clock()
        batch = decode_otlp([m.value() or b"" for m in msgs], encoding=self.encoding, now=now)
        before = self._producer.stats()
        for key, value in batch.events:
            self._producer.send_raw(self.inference_topic, key, value)
        for rej in batch.rejects:
            src = msgs[rej.index]
            topic = src.topic() or ""
            dead = to_dead_letter(
                rej, topic=topic, now=now, partition=src.partition(), offset=src.offset()
            )
            self._producer.send(self.deadletter_topic, f"{topic}/{src.partition()}", dead)
        left = self._producer.flush(30.0)
        after = self._producer.stats()
        lost = (after.failed - before.failed) + (after.dropped - before.dropped)
        if left or lost:
            self.stats.produce_failures += left + lost
            raise BridgeError(
                f"{left} messages unacknowledged, {lost} failed ({after.last_error}); "
                "offsets not committed: a restart reads this batch again"
            )
        self._consumer.commit(asynchronous=False)
        s = self.stats
        s.last_commit = self.clock()
        s.messages += len(msgs)
        s.spans += batch.spans
        s.events += len(batch.events)
        s.skipped += batch.skipped
        s.invalid_spans += batch.invalid
        s.dead_lettered += len(batch.rejects)
        s.lag = self._lag()
        return len(msgs)

    def _lag(self) -> int:
        """How far behind the source topic this bridge is, in messages (-1: unknown).

        The high watermarks come from the last fetch (``cached``: no broker round trip)."""
        total, known = 0, False
        for tp in self._consumer.position(self._consumer.assignment()):
            low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:
                continue
            # No position yet (nothing consumed): all that is left from the low mark.
            at = tp.offset if tp.offset >= 0 else max(low, 0)
            total += max(high - at, 0)
            known = True
        return total if known else -1

    def run(self, duration_s: float | None = None, stop: threading.Event | None = None) -> None:
        halt = stop if stop is not None else threading.Event()
        end = None if duration_s is None else time.monotonic() + duration_s
        self.running = True
        try:
            while not halt.is_set() and (end is None or time.monotonic() < end):
                self.poll_once()
        finally:
            self.running = False

    def close(self) -> None:
        self._producer.close(10.0)
        self._consumer.close()
