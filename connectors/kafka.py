"""A non-blocking, counted Kafka producer shared by every publisher (gateway, GPU agent, scraper).

``send`` never blocks and never raises for broker trouble: librdkafka batches
(``linger.ms``, compression) in its own threads; when its bounded local queue is
full (the broker is unreachable or slow) the message is dropped and counted.
Delivery reports count delivered/failed. Callers pass a plain client config
(``bootstrap.servers`` + security), built by the settings module; this module
reads no environment.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel

from schemas.models import dump_json

# librdkafka's own log lines (e.g. "connection refused" while a broker is away) go to
# Python logging instead of the host process's stderr; the host decides what to show.
KAFKA_LOG = logging.getLogger("llmwatch.kafka")

# Throughput-minded defaults: a publisher on a request path wants batching and a
# bounded memory footprint, not per-message latency.
PRODUCER_DEFAULTS: dict[str, str | int] = {
    "linger.ms": 20,
    "batch.num.messages": 10_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 100_000,
    "queue.buffering.max.kbytes": 262_144,
    "message.timeout.ms": 30_000,
    "acks": "all",
    "enable.idempotence": "false",
    # A broker restart is routine; do not spam logs about every closed connection.
    "log.connection.close": "false",
}


def producer_config(
    client: Mapping[str, str], overrides: Mapping[str, str | int] | None = None
) -> dict[str, str | int]:
    """``PRODUCER_DEFAULTS`` + the client config (brokers, security) + per-use overrides."""
    if not client.get("bootstrap.servers"):
        raise ValueError("bootstrap.servers: missing from the Kafka client config")
    conf: dict[str, str | int] = dict(PRODUCER_DEFAULTS)
    conf.update(client)
    if overrides:
        conf.update(overrides)
    return conf


@dataclass(frozen=True)
class PublisherStats:
    sent: int  # accepted into the local queue
    delivered: int  # acknowledged by the broker
    failed: int  # the broker or librdkafka gave up (delivery report with an error)
    dropped: int  # never queued: local queue full, or the message could not be encoded
    queued: int  # in the local queue now, not yet acknowledged
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class KeyedProducer:
    """One confluent-kafka Producer, keyed sends of wire models, counters for every outcome."""

    def __init__(
        self,
        client: Mapping[str, str],
        overrides: Mapping[str, str | int] | None = None,
        producer: Any = None,
    ) -> None:
        if producer is None:
            from confluent_kafka import Producer

            conf: dict[str, Any] = dict(producer_config(client, overrides))
            conf.setdefault("logger", KAFKA_LOG)
            producer = Producer(conf)
        self._producer = producer
        self._lock = threading.Lock()  # callbacks run on whichever thread polls
        self._sent = 0
        self._delivered = 0
        self._failed = 0
        self._dropped = 0
        self._last_error: str | None = None
        self._closed = False

    def send(self, topic: str, key: str | bytes | None, model: BaseModel) -> bool:
        """Queue one message; False (and counted) if it was dropped. Never raises for Kafka."""
        try:
            value = dump_json(model)
        except (TypeError, ValueError) as exc:
            return self._drop(f"encode: {exc}")
        return self.send_raw(topic, key, value)

    def send_raw(self, topic: str, key: str | bytes | None, value: bytes) -> bool:
        if self._closed:
            return self._drop("publisher closed")
        raw_key = key.encode() if isinstance(key, str) else key
        try:
            self._producer.produce(topic, value=value, key=raw_key, on_delivery=self._on_delivery)
        except BufferError:
            # Local queue full: the broker is away or slower than we produce. Shed load.
            self._producer.poll(0)
            return self._drop("local queue full")
        except Exception as exc:  # KafkaException (e.g. message too large): never the caller's
            return self._drop(f"produce: {exc}")
        with self._lock:
            self._sent += 1
        # Serve delivery callbacks opportunistically; poll(0) does not wait.
        self._producer.poll(0)
        return True

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports; returns how many were served."""
        return int(self._producer.poll(timeout_s))

    def flush(self, timeout_s: float = 10.0) -> int:
        """Wait up to ``timeout_s`` for the queue to drain; returns how many are still queued."""
        return int(self._producer.flush(timeout_s))

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush and stop accepting; returns how many messages were left undelivered."""
        if self._closed:
            return self.queued()
        left = self.flush(timeout_s)
        self._closed = True
        return left

    def queued(self) -> int:
        return len(self._producer)

    def stats(self) -> PublisherStats:
        with self._lock:
            return PublisherStats(
                sent=self._sent,
                delivered=self._delivered,
                failed=self._failed,
                dropped=self._dropped,
                queued=self.queued(),
                last_error=self._last_error,
            )

    def _drop(self, reason: str) -> bool:
        with self._lock:
            self._dropped += 1
            self._last_error = reason
        return False

    def _on_delivery(self, err: Any, msg: Any) -> None:
        with self._lock:
            if err is None:
                self._delivered += 1
            else:
                self._failed += 1
                self._last_error = str(err)
