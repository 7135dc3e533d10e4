"""The embedded broker: librdkafka's Kafka-protocol mock cluster, no Java needed.

The mock cluster lives inside a librdkafka client handle created with
``test.mock.num.brokers``; that handle *is* the broker, so it is kept until ``stop``.
Other clients (Faust, confluent-kafka consumers, the publishers) reach it over TCP
on 127.0.0.1. It is in memory only and has no CreateTopics (the Admin API answers
"not supported"): topics auto-create on first use with ``AUTO_PARTITIONS`` partitions,
which no setting changes. So the topics a caller names are made up front, with the
partition count it asks for (``llmwatch worker`` and ``llmwatch broker`` pass every
worker topic with ``LLMWATCH_PARTITIONS``), through librdkafka's mock API, which
confluent-kafka does not wrap: it is called with ctypes in the library the wheel ships.

It is for demos and tests, not for production: each partition keeps only its most
recent few MB of message sets (librdkafka's mock log limits; about 10k uncompressed
events) and silently drops older ones, so a consumer that falls further behind than
that loses events. Compressed batches stretch the window; a real broker removes it.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any


class BrokerError(RuntimeError):
    """The embedded broker did not come up."""


def _librdkafka() -> ctypes.CDLL:
    """The librdkafka the confluent-kafka wheel ships (and has already loaded)."""
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).resolve().parents[1]
    found = sorted(libs.glob("confluent_kafka.libs/librdkafka*")) + sorted(
        libs.glob("confluent_kafka/.dylibs/librdkafka*")
    )
    try:
        lib = ctypes.CDLL(str(found[0]) if found else "librdkafka.so.1")
    except OSError as exc:
        raise BrokerError(f"cannot load librdkafka to set up topics: {exc}") from None
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    lib.rd_kafka_conf_new.restype = vp
    lib.rd_kafka_conf_set.argtypes = [vp, cp, cp, cp, ctypes.c_size_t]
    lib.rd_kafka_new.restype = vp
    lib.rd_kafka_new.argtypes = [ctypes.c_int, vp, cp, ctypes.c_size_t]
    lib.rd_kafka_handle_mock_cluster.restype = vp
    lib.rd_kafka_handle_mock_cluster.argtypes = [vp]
    lib.rd_kafka_mock_cluster_bootstraps.restype = cp
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [vp]
    lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
    lib.rd_kafka_mock_topic_create.argtypes = [vp, cp, ctypes.c_int, ctypes.c_int]
    lib.rd_kafka_destroy.argtypes = [vp]
    return lib


class _MockHandle:
    """A bare librdkafka producer handle holding a mock cluster, with topics made up front."""

    def __init__(self, num_brokers: int, topics: Mapping[str, int]) -> None:
        self._lib = _librdkafka()
        err = ctypes.create_string_buffer(512)
        conf = self._lib.rd_kafka_conf_new()
        # log_level 4: librdkafka says "mock cluster enabled" at notice level on every start.
        for key, value in (("test.mock.num.brokers", str(num_brokers)), ("log_level", "4")):
            if self._lib.rd_kafka_conf_set(conf, key.encode(), value.encode(), err, 512) != 0:
                raise BrokerError(f"librdkafka refused {key}: {err.value.decode()}")
        self._rk = self._lib.rd_kafka_new(0, conf, err, 512)  # 0: RD_KAFKA_PRODUCER
        if not self._rk:
            raise BrokerError(f"embedded broker did not start: {err.value.decode()}")
        cluster = self._lib.rd_kafka_handle_mock_cluster(self._rk)
        self.bootstrap: str = self._lib.rd_kafka_mock_cluster_bootstraps(cluster).decode()
        for name, partitions in topics.items():
            if self._lib.rd_kafka_mock_topic_create(cluster, name.encode(), partitions, 1) != 0:
                self.close()
                raise BrokerError(f"embedded broker could not create topic {name}")

    def close(self) -> None:
        if self._rk:
            self._lib.rd_kafka_destroy(self._rk)
            self._rk = None


class EmbeddedBroker:
    """``with EmbeddedBroker() as bootstrap: ...`` gives ``"127.0.0.1:PORT"``.

    ``topics`` maps names to partition counts, created before the address is returned;
    any other topic auto-creates with ``AUTO_PARTITIONS``.
    """

    # librdkafka's mock cluster gives every auto-created topic this many partitions.
    AUTO_PARTITIONS = 4
    PARTITIONS = AUTO_PARTITIONS  # the older name, kept for callers

    def __init__(self, num_brokers: int = 1, topics: Mapping[str, int] | None = None) -> None:
        if num_brokers < 1:
            raise ValueError("num_brokers: must be at least 1")
        bad = {n: p for n, p in (topics or {}).items() if p < 1}
        if bad:
            raise ValueError(f"topics: partition counts must be at least 1: {bad}")
        self.num_brokers = num_brokers
        self.topics = dict(topics or {})
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
        if self.topics:
            mock = _MockHandle(self.num_brokers, self.topics)
            self._handle, self._bootstrap = mock, mock.bootstrap
            return mock.bootstrap
        return self._start_plain(timeout_s)

    def _start_plain(self, timeout_s: float) -> str:
        from confluent_kafka import KafkaException, Producer

        handle = Producer({"test.mock.num.brokers": self.num_brokers, "log_level": 4})
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
        # Dropping the last reference (or destroying the bare handle) ends the mock
        # cluster and closes its sockets.
        if isinstance(self._handle, _MockHandle):
            self._handle.close()
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


def is_embedded(cluster_id: str | None) -> bool:
    """Whether a cluster's metadata says it is librdkafka's mock cluster (the embedded broker)."""
    return bool(cluster_id) and str(cluster_id).startswith("mockCluster")


def worker_topic_partitions(settings: Any, app_id: str = "llmwatch") -> dict[str, int]:
    """Every topic ``llmwatch worker`` needs, with ``LLMWATCH_PARTITIONS`` partitions."""
    from stream.app import worker_topics

    return {s.name: s.partitions for s in worker_topics(settings, app_id)}
