"""Publish a simulated fleet to Kafka: one topic per event kind, keyed by series, paced.

Keys decide which worker engine sees an event (one engine per partition); they follow
``schemas.keys``, the rule every publisher shares (inference and feedback by model,
GPU samples by host).

Unlike the gateway publisher this one never sheds load: the simulator is not on a
request path, so when librdkafka's local queue is full it waits (serving delivery
reports) and every message ends delivered or counted as failed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from connectors.kafka import KAFKA_LOG, producer_config
from schemas import keys

Event = dict[str, Any]
Clock = Callable[[], float]
KINDS = ("inference", "gpu", "feedback")


def topics_for(settings: Any) -> dict[str, str]:
    """Event kind -> topic name from a ``Settings``."""
    return {
        "inference": settings.topic_inference,
        "gpu": settings.topic_gpu,
        "feedback": settings.topic_feedback,
    }


def partition_key(event: Mapping[str, Any]) -> bytes:
    """The message key for a wire event dict: the same rule every publisher uses."""
    return keys.partition_key(str(event.get("kind")), event).encode()


def event_time(event: Mapping[str, Any]) -> float:
    """Epoch seconds of a wire event's ``ts`` (ISO-8601 as the simulator writes it)."""
    return datetime.fromisoformat(event["ts"]).timestamp()


def live_start(now: float, span_s: float, speed: float) -> datetime:
    """Simulation start so that, paced at ``speed``, no timestamp is ever ahead of the clock.

    At speed 1 that is ``now``. Faster, event time outruns the wall clock, so the span
    is moved back: the last event is stamped about when it is sent and earlier ones lie
    in the recent past; the worker rejects timestamps too far in the future, not past.
    """
    if speed <= 0:
        raise ValueError("speed: must be positive")
    return datetime.fromtimestamp(now - span_s * (1.0 - 1.0 / speed), tz=UTC)


class Pacer:
    """Maps event time to wall time: an event ``dt`` after the first is due ``dt / speed`` later.

    ``clock`` and ``idle`` are injected so tests run without sleeping; ``idle(seconds)``
    is how waiting happens (the publisher serves delivery reports while it waits).
    """

    def __init__(self, speed: float = 1.0, clock: Clock = time.monotonic) -> None:
        if speed <= 0:
            raise ValueError("speed: must be positive")
        self.speed = float(speed)
        self.clock = clock
        self._origin: tuple[float, float] | None = None  # (event time, wall time)

    def due_in(self, event_t: float) -> float:
        """Seconds until the event at ``event_t`` is due (<= 0 when due or late)."""
        if self._origin is None:
            self._origin = (event_t, self.clock())
            return 0.0
        t0, w0 = self._origin
        return w0 + (event_t - t0) / self.speed - self.clock()

    def wall_at(self, event_t: float) -> float | None:
        """The clock reading at which the event at ``event_t`` is (or was) due."""
        if self._origin is None:
            return None
        t0, w0 = self._origin
        return w0 + (event_t - t0) / self.speed

    def wait(self, event_t: float, idle: Callable[[float], object], max_step: float = 0.1) -> None:
        """Block (through ``idle``) until the event is due; short steps keep Ctrl-C snappy."""
        left = self.due_in(event_t)
        while left > 0.002:  # finer waits cost more than they buy
            idle(min(left, max_step))
            left = self.due_in(event_t)


@dataclass
class PublishStats:
    sent: Counter[str] = field(default_factory=Counter)  # by kind, handed to librdkafka
    delivered: int = 0
    failed: int = 0
    last_error: str | None = None
    first_t: float | None = None  # event time of the first and latest event sent
    last_t: float | None = None

    @property
    def total(self) -> int:
        return sum(self.sent.values())


class FleetPublisher:
    """Keyed, counted sends of wire dicts to the topic of their kind; waits rather than drops."""

    def __init__(
        self,
        client: Mapping[str, str],
        topics: Mapping[str, str],
        overrides: Mapping[str, str | int] | None = None,
    ) -> None:
        from confluent_kafka import Producer

        unknown = sorted(set(topics) - set(KINDS))
        if unknown:
            raise ValueError(f"topics: unknown event kind(s) {unknown}; known: {list(KINDS)}")
        # No compression: the worker's consumer (aiokafka) reads lz4/snappy/zstd only when
        # their optional libraries are installed, and local demos gain nothing from it.
        base: dict[str, str | int] = {"linger.ms": 5, "compression.type": "none"}
        conf: dict[str, Any] = dict(producer_config(client, {**base, **(overrides or {})}))
        conf.setdefault("logger", KAFKA_LOG)
        self._producer = Producer(conf)
        self.topics = dict(topics)
        self.stats = PublishStats()

    def send(self, event: Event) -> None:
        kind = event.get("kind")
        topic = self.topics.get(kind) if isinstance(kind, str) else None
        if topic is None or not isinstance(kind, str):
            raise ValueError(
                f"kind: no topic for event kind {kind!r}; known: {sorted(self.topics)}"
            )
        value = orjson.dumps(event)
        key = partition_key(event)
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._report)
                break
            except BufferError:
                self.idle(0.05)  # queue full: let deliveries drain, then retry
        self.stats.sent[kind] += 1
        self._producer.poll(0)

    # Waits sleep in Python between non-blocking polls: a ^C that lands inside
    # librdkafka's blocking poll/flush surfaces as SystemError instead of KeyboardInterrupt.
    def idle(self, seconds: float) -> None:
        """Serve delivery reports, then wait ``seconds``."""
        self._producer.poll(0)
        time.sleep(seconds)

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for acknowledgements; returns how many are still undelivered."""
        deadline = time.monotonic() + timeout_s
        while len(self._producer) and time.monotonic() < deadline:
            self.idle(0.01)
        self._producer.poll(0)
        return len(self._producer)

    def ensure_topics(self, extra: Iterable[str] = (), timeout_s: float = 10.0) -> None:
        """Ask for each topic's metadata (brokers that auto-create topics create them now)."""
        for topic in [*self.topics.values(), *extra]:
            self._producer.list_topics(topic=topic, timeout=timeout_s)

    def _report(self, err: Any, msg: Any) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self.stats.failed += 1
            self.stats.last_error = str(err)


def publish_events(
    chunks: Iterable[list[Event]],
    publisher: FleetPublisher,
    *,
    pacer: Pacer | None = None,
    on_event: Callable[[Event, float], None] | None = None,
    on_tick: Callable[[PublishStats], None] | None = None,
    tick_s: float = 1.0,
    clock: Clock = time.monotonic,
    idle: Callable[[float], object] | None = None,
) -> PublishStats:
    """Send every event, paced by ``pacer`` (or as fast as possible), then return the stats.

    ``on_event(event, event_time)`` runs after each send; ``on_tick`` about every
    ``tick_s`` of wall time. While ahead of the pace it waits in ``idle`` (default:
    serving delivery reports). KeyboardInterrupt propagates: the caller flushes and reports.
    """
    stats = publisher.stats
    wait_in = publisher.idle if idle is None else idle
    next_tick = clock() + tick_s
    for chunk in chunks:
        for event in chunk:
            t = event_time(event)
            if pacer is not None:
                pacer.wait(t, wait_in)
            publisher.send(event)
            if stats.first_t is None:
                stats.first_t = t
            stats.last_t = t
            if on_event is not None:
                on_event(event, t)
            if on_tick is not None and clock() >= next_tick:
                on_tick(stats)
                next_tick = clock() + tick_s
    return stats
