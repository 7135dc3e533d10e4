"""The OTLP bridge against the embedded broker: Collector-style OTLP payloads in, inference
events keyed by model and dead letters with reasons out, offsets committed after."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from connectors.otlp_bridge import OtlpBridge
from schemas.models import DeadLetter, InferenceEvent
from tests.conftest import Record
from tests.schemas.test_otlp import ENCODERS, T0, Spans, chat

MS = 10**6


def _payloads(encoding: str) -> list[bytes]:
    t = Spans()
    out = []
    for k in range(5):
        for i in range(10):
            model = "llama-3-8b" if i % 2 else "mistral-7b"
            t.span("chat", T0 + (k * 10 + i) * 100 * MS, 200 + i, chat(model=model))
        t.span("GET /health", T0 + k * MS, 1, {"http.request.method": "GET"})
        out.append(ENCODERS[encoding](t.take()))
    return out


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_bridge_republishes_keyed_by_model_and_dead_letters(
    encoding: str,
    embedded_broker: str,
    topic_name: str,
    consume_all: Callable[..., list[Record]],
) -> None:
    source, inference, dead = topic_name, f"{topic_name}.inf", f"{topic_name}.dlq"
    producer = Producer({"bootstrap.servers": embedded_broker})
    good = _payloads(encoding)
    garbage = b"\x0a\xff\xff\xff garbage"
    for raw in [*good[:3], garbage, *good[3:]]:
        producer.produce(source, value=raw)
    assert producer.flush(10) == 0
    bridge = OtlpBridge(
        {"bootstrap.servers": embedded_broker},
        source_topic=source,
        encoding=encoding,
        inference_topic=inference,
        deadletter_topic=dead,
        group=f"bridge-{uuid.uuid4().hex[:6]}",
    )
    try:
        seen_lag = []
        for _ in range(60):
            bridge.poll_once(max_messages=2, timeout_s=0.5)
            seen_lag.append(bridge.stats.lag)
            if bridge.stats.messages >= 6:
                break
    finally:
        bridge.close()
    s = bridge.stats
    # Two at a time from six: the bridge saw itself behind, then caught up.
    assert max(seen_lag) >= 2 and s.lag == 0, seen_lag
    assert (s.messages, s.spans, s.events, s.skipped, s.dead_lettered) == (6, 55, 50, 5, 1)
    events = consume_all(inference, expected=50)
    assert len(events) == 50
    for r in events:
        ev = InferenceEvent.model_validate_json(r.value)
        assert r.key == ev.model.encode()  # keyed as schemas.keys says: by model
    (letter,) = consume_all(dead, expected=1)
    d = DeadLetter.model_validate_json(letter.value)
    assert base64.b64decode(d.raw_b64) == garbage
    assert d.topic == source and d.offset is not None and encoding in d.reason


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(ValueError, match="encoding"):
        OtlpBridge({"bootstrap.servers": "127.0.0.1:1"}, encoding="thrift")
