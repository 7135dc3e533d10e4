"""A real OTLP bridge (in-process, its real HTTP server) over a few real OTLP messages,
for the deploy tests that need its /metrics scraped."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import Producer

from connectors.otlp_bridge import OtlpBridge
from stream.otlp_bridge_web import bridge_registry, serve
from tests.schemas.test_otlp import ENCODERS, T0, Spans, chat

MS = 10**6


def publish_spans(broker: str, topic: str) -> int:
    """Two GenAI spans, one HTTP span (skipped) and one payload that is not OTLP
    (dead-lettered): every outcome the bridge counts but produce failures."""
    t = Spans()
    t.span("chat", T0, 200, chat(model="llama-3-8b"))
    t.span("chat", T0 + 100 * MS, 250, chat(model="llama-3-8b"))
    t.span("GET /healthz", T0, 5, {"http.request.method": "GET"})
    producer = Producer({"bootstrap.servers": broker})
    producer.produce(topic, value=ENCODERS["otlp_proto"](t.take()))
    producer.produce(topic, value=b"\xffnot an OTLP request")
    assert producer.flush(10) == 0
    return 2


@contextmanager
def running_bridge(broker: str) -> Iterator[int]:
    """The bridge's /metrics port, while it consumes a topic of its own (its events go to
    a topic of their own too, so no worker sees them)."""
    stem = f"test.bridge.{uuid.uuid4().hex[:8]}"
    publish_spans(broker, stem)
    bridge = OtlpBridge(
        {"bootstrap.servers": broker},
        source_topic=stem,
        inference_topic=f"{stem}.inference",
        deadletter_topic=f"{stem}.deadletter",
        group=f"{stem}.group",
    )
    server = serve(bridge_registry(lambda: bridge.stats), lambda: bridge.running, 0, "127.0.0.1")
    halt = threading.Event()
    loop = threading.Thread(target=bridge.run, kwargs={"stop": halt}, daemon=True)
    loop.start()
    try:
        yield server.server_address[1]
    finally:
        halt.set()
        loop.join(30)
        server.shutdown()
        bridge.close()
