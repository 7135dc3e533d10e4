"""The embedded broker: librdkafka's Kafka-protocol mock cluster, no Java needed.

It lives inside a confluent-kafka ``Producer`` created with ``test.mock.num.brokers``;
that producer object *is* the broker, so it is kept until ``stop``. Other clients
(Faust, confluent-kafka consumers, the publishers) reach it over TCP on 127.0.0.1.
It is in memory only, has no CreateTopics, and auto-creates topics on first use.

It is for demos and tests, not for production: each partition keeps only its most
recent few MB of message sets (librdkafka's mock log limits; about 10k uncompressed
events) and silently drops older ones, so a consumer that falls further behind than
that loses events. Compressed batches stretch the window; a real broker removes it.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any


class BrokerError(RuntimeError):
    """The embedded broker did not come up."""


class EmbeddedBroker:
    """``with EmbeddedBroker() as bootstrap: ...`` gives ``"127.0.0.1:PORT"``."""

    # librdkafka's mock cluster gives every auto-created topic this many partitions.
    PARTITIONS = 4

    def __init__(self, num_brokers: int = 1) -> None:
        if num_brokers < 1:
            raise ValueError("num_brokers: must be at least 1")
        self.num_brokers = num_brokers
        self._handle: Any = None
        self._bootstrap: str | None = None

    @property
    def bootstrap(self) -> str:
        if self._bootstrap is None:
            raise BrokerError("the embedded broker is not running")
        return self._bootstrap

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self, timeout_s: float = 10.0) -> str:
        if self._bootstrap is not None:
            return self._bootstrap
        from confluent_kafka import KafkaException, Producer

        conf: dict[str, Any] = {
            "test.mock.num.brokers": self.num_brokers,
            # librdkafka says "mock cluster enabled" at notice level on every start.
            "log_level": 4,
        }
        handle = Producer(conf)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                brokers = handle.list_topics(timeout=1.0).brokers
            except KafkaException as exc:
                if time.monotonic() >= deadline:
                    raise BrokerError(f"embedded broker did not answer: {exc}") from None
                continue
            if brokers:
                break
        self._handle = handle
        self._bootstrap = ",".join(f"{b.host}:{b.port}" for b in brokers.values())
        return self._bootstrap

    def stop(self) -> None:
        # Dropping the last reference destroys the mock cluster and closes its sockets.
        self._handle = None
        self._bootstrap = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
