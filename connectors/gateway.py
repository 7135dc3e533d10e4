"""The gateway client: publish inference and feedback events without slowing the request path.

``GatewayPublisher.publish`` costs one JSON encode and one enqueue into librdkafka's
local queue; batching, compression and retries happen on librdkafka's threads. If
the broker is unreachable the bounded queue fills and further events are dropped
and counted (``stats().dropped``), never raised to the caller. Events are keyed as
``schemas.keys`` says (inference and feedback by model alone, so all of a model's
versions, gateways and routes meet), so everything one detector compares lands on one
partition and one worker sees it, in order.

``AsyncGatewayPublisher`` is the same for asyncio servers: ``publish`` is a plain
(non-blocking) call, and a background task serves delivery reports with
``poll(0)`` so the event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from connectors.kafka import KeyedProducer, PublisherStats
from schemas.keys import key_of
from schemas.models import FeedbackEvent, InferenceEvent

DEFAULT_INFERENCE_TOPIC = "llmwatch.inference"
DEFAULT_FEEDBACK_TOPIC = "llmwatch.feedback"

GatewayEvent = InferenceEvent | FeedbackEvent


class GatewayPublisher:
    """Thread-safe, non-blocking publisher for a gateway process."""

    def __init__(
        self,
        client: Mapping[str, str],
        *,
        inference_topic: str = DEFAULT_INFERENCE_TOPIC,
        feedback_topic: str = DEFAULT_FEEDBACK_TOPIC,
        linger_ms: int = 20,
        max_queued: int = 100_000,
        compression: str = "lz4",
        overrides: Mapping[str, str | int] | None = None,
    ) -> None:
        conf: dict[str, str | int] = {
            "linger.ms": linger_ms,
            "queue.buffering.max.messages": max_queued,
            "compression.type": compression,
        }
        if overrides:
            conf.update(overrides)
        self._producer = KeyedProducer(client, conf)
        self._topics = {InferenceEvent: inference_topic, FeedbackEvent: feedback_topic}

    def publish(self, event: GatewayEvent) -> bool:
        """Enqueue one event; True if queued, False if dropped (counted). Never raises for Kafka."""
        topic = self._topics.get(type(event))
        if topic is None:
            raise TypeError(f"publish takes InferenceEvent or FeedbackEvent, not {type(event)}")
        return self._producer.send(topic, key_of(event), event)

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports (publish does this too, opportunistically)."""
        return self._producer.poll(timeout_s)

    def flush(self, timeout_s: float = 10.0) -> int:
        """Block up to ``timeout_s`` until queued events are acknowledged; returns those left."""
        return self._producer.flush(timeout_s)

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush, then refuse further events (they are counted as dropped)."""
        return self._producer.close(timeout_s)

    def stats(self) -> PublisherStats:
        return self._producer.stats()


class AsyncGatewayPublisher:
    """``GatewayPublisher`` for an asyncio gateway: ``async with`` starts the report poller."""

    def __init__(
        self, client: Mapping[str, str], *, poll_interval_s: float = 0.05, **kwargs: Any
    ) -> None:
        self._sync = GatewayPublisher(client, **kwargs)
        self._interval = poll_interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll_forever())

    def publish(self, event: GatewayEvent) -> bool:
        """Non-blocking, safe to call straight from a request handler."""
        return self._sync.publish(event)

    async def flush(self, timeout_s: float = 10.0) -> int:
        """Wait for acknowledgements without blocking the loop (polls, yielding between)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._sync.stats().queued > 0 and loop.time() < deadline:
            self._sync.poll(0)
            await asyncio.sleep(min(self._interval, max(0.0, deadline - loop.time())))
        return self._sync.stats().queued

    async def close(self, timeout_s: float = 10.0) -> int:
        left = await self.flush(timeout_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._sync.close(0)
        return left

    def stats(self) -> PublisherStats:
        return self._sync.stats()

    async def __aenter__(self) -> AsyncGatewayPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _poll_forever(self) -> None:
        while True:
            self._sync.poll(0)
            await asyncio.sleep(self._interval)
