"""GatewayPublisher / AsyncGatewayPublisher against the embedded Kafka-protocol broker."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from connectors.gateway import AsyncGatewayPublisher, GatewayPublisher
from schemas.keys import key_of
from schemas.models import FeedbackEvent, InferenceEvent
from tests.conftest import Record

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def inference(i: int, model: str = "llama-3-8b", gateway: str = "gw-a") -> InferenceEvent:
    return InferenceEvent(
        ts=T0 + timedelta(milliseconds=i),
        gateway=gateway,
        model=model,
        model_version="v1",
        request_id=f"req-{i}",
        status="ok",
        latency_ms=100.0 + i,
        ttft_ms=20.0,
        prompt_tokens=10,
        completion_tokens=30,
    )


def closed_port() -> int:
    # Bind and release: nothing listens there afterwards.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_events_arrive_keyed_by_series_one_partition_per_series(
    embedded_broker: str, topic_name: str, consume_all: Callable[..., list[Record]]
) -> None:
    fb_topic = topic_name + ".fb"
    pub = GatewayPublisher(
        {"bootstrap.servers": embedded_broker}, inference_topic=topic_name, feedback_topic=fb_topic
    )
    events = [
        inference(i, model=m, gateway=g)
        for i in range(60)
        for m, g in [("llama-3-8b", "gw-a"), ("mixtral", "gw-b")][i % 2 : i % 2 + 1]
    ]
    feedback = FeedbackEvent(
        ts=T0, request_id="req-1", model="mixtral", model_version="v1", score=-0.5
    )
    assert all(pub.publish(e) for e in events)
    assert pub.publish(feedback)
    assert pub.flush(10) == 0
    st = pub.stats()
    assert (st.sent, st.delivered, st.failed, st.dropped, st.queued) == (61, 61, 0, 0, 0)

    records = consume_all(topic_name, expected=60)
    assert len(records) == 60
    partitions: dict[bytes | None, set[int]] = {}
    for r in records:
        partitions.setdefault(r.key, set()).add(r.partition)
    assert set(partitions) == {b"llama-3-8b", b"mixtral"}
    assert all(len(p) == 1 for p in partitions.values())
    decoded = sorted(
        (InferenceEvent.model_validate(orjson.loads(r.value)) for r in records),
        key=lambda e: e.request_id,
    )
    assert decoded == sorted(events, key=lambda e: e.request_id)

    fb = consume_all(fb_topic, expected=1)
    assert [r.key for r in fb] == [b"mixtral"]
    assert FeedbackEvent.model_validate_json(fb[0].value) == feedback
    pub.close()


def test_events_of_one_model_share_a_key() -> None:
    # Versions and gateways of a model must meet in one engine (schemas/keys.py).
    assert key_of(inference(0)) == "llama-3-8b"


def test_unreachable_broker_drops_and_counts_never_raises() -> None:
    pub = GatewayPublisher(
        {"bootstrap.servers": f"127.0.0.1:{closed_port()}"},
        max_queued=10,
        overrides={"message.timeout.ms": 300, "reconnect.backoff.max.ms": 100},
    )
    results = [pub.publish(inference(i)) for i in range(25)]
    assert results.count(True) == 10 and results.count(False) == 15
    st = pub.stats()
    assert (st.sent, st.dropped) == (10, 15)
    assert st.last_error == "local queue full"
    # The queued ten time out in librdkafka and are reported as failed, not delivered.
    assert pub.flush(10) == 0
    st = pub.stats()
    assert (st.delivered, st.failed, st.queued) == (0, 10, 0)
    assert pub.close(0) == 0
    assert pub.publish(inference(99)) is False
    assert pub.stats().dropped == 16


def test_wrong_event_type_is_a_programming_error(embedded_broker: str) -> None:
    pub = GatewayPublisher({"bootstrap.servers": embedded_broker})
    with pytest.raises(TypeError):
        pub.publish("not an event")  # type: ignore[arg-type]


def test_missing_bootstrap_is_named() -> None:
    with pytest.raises(ValueError, match=r"bootstrap\.servers"):
        GatewayPublisher({})


def test_async_publisher_delivers_without_blocking_the_loop(
    embedded_broker: str, topic_name: str, consume_all: Callable[..., list[Record]]
) -> None:
    ticks = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async def main() -> tuple[int, int]:
        stop = asyncio.Event()
        task = asyncio.create_task(ticker(stop))
        async with AsyncGatewayPublisher(
            {"bootstrap.servers": embedded_broker}, inference_topic=topic_name, linger_ms=5
        ) as pub:
            accepted = sum(pub.publish(inference(i)) for i in range(200))
            left = await pub.flush(10)
            delivered = pub.stats().delivered
        stop.set()
        await task
        assert left == 0
        return accepted, delivered

    accepted, delivered = asyncio.run(main())
    assert accepted == 200 and delivered == 200
    assert ticks > 0  # other tasks ran while we waited for acknowledgements
    assert len(consume_all(topic_name, expected=200)) == 200
