"""OTLP GenAI spans -> InferenceEvents: spans made with the real OpenTelemetry SDK and
encoded by its own OTLP protobuf and JSON encoders, as the Collector's Kafka exporter
writes them (otlp_proto, otlp_json)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
import pytest
from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans as json_encode
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as proto_encode
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status as OtelStatus
from opentelemetry.trace import StatusCode

from schemas.models import FinishReason, InferenceEvent, Status
from schemas.otlp import OtlpBatch, decode_otlp

T0 = 1_717_401_600 * 10**9  # ns
MS = 10**6


class Spans:
    """A tracer whose finished spans can be taken and encoded as the Collector would."""

    def __init__(self, service: str = "llm-gateway") -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = provider.get_tracer("test")

    def span(
        self,
        name: str,
        start: int,
        duration_ms: float,
        attrs: dict[str, Any],
        *,
        error: bool = False,
        events: Sequence[tuple[str, int]] = (),
    ) -> None:
        s = self.tracer.start_span(name, start_time=start, attributes=attrs)
        for event, at in events:
            s.add_event(event, timestamp=at)
        if error:
            s.set_status(OtelStatus(StatusCode.ERROR, "upstream failed"))
        s.end(end_time=start + int(duration_ms * MS))

    def take(self) -> tuple[ReadableSpan, ...]:
        spans = self.exporter.get_finished_spans()
        self.exporter.clear()
        return spans


def proto(spans: Sequence[ReadableSpan]) -> bytes:
    return bytes(proto_encode(spans).SerializeToString())


def as_json(spans: Sequence[ReadableSpan]) -> bytes:
    return str(json_encode(spans).to_json()).encode()


ENCODERS: dict[str, Callable[[Sequence[ReadableSpan]], bytes]] = {
    "otlp_proto": proto,
    "otlp_json": as_json,
}


def chat(model: str = "llama-3-8b", **extra: Any) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "vllm",
        "gen_ai.request.model": model,
        "gen_ai.response.model": f"{model}-2024-06",
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.usage.input_tokens": 512,
        "gen_ai.usage.output_tokens": 101,
        "gen_ai.response.finish_reasons": ["stop"],
        "server.address": "gw-us-east",
        **extra,
    }


@pytest.fixture(params=sorted(ENCODERS))
def encoding(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def mixed_trace() -> tuple[ReadableSpan, ...]:
    timed_out: dict[str, Any] = {"error.type": "TimeoutError", "http.response.status_code": 504}
    t = Spans()
    t.span("POST /v1/chat/completions", T0, 900, {"http.request.method": "POST"})  # not GenAI
    t.span("chat llama-3-8b", T0, 800, chat(), events=[("gen_ai.first_token", T0 + 120 * MS)])
    t.span(
        "chat llama-3-8b",
        T0,
        400,
        chat(**timed_out),
        error=True,
    )
    t.span(
        "execute_tool search",
        T0,
        50,
        {"gen_ai.operation.name": "execute_tool", "gen_ai.request.model": "llama-3-8b"},
    )
    # OpenLLMetry's older names, and gen_ai.system instead of gen_ai.provider.name.
    t.span(
        "openai.chat",
        T0,
        1000,
        {
            "gen_ai.system": "openai",
            "llm.request.type": "chat",
            "llm.request.model": "gpt-4o",
            "llm.response.model": "gpt-4o-2024-08-06",
            "llm.usage.prompt_tokens": 30,
            "llm.usage.completion_tokens": 11,
            "llm.response.finish_reason": "length",
            "gen_ai.server.time_to_first_token": 0.25,
        },
    )
    return t.take()


def test_genai_spans_map_to_events_and_the_rest_is_counted(encoding: str) -> None:
    batch = decode_otlp([ENCODERS[encoding](mixed_trace())], encoding=encoding)
    assert (batch.spans, batch.skipped, batch.invalid, batch.rejects) == (5, 2, 0, [])
    rows = batch.columns
    assert len(rows) == 3
    by_model = {m: i for i, m in enumerate(rows.model.tolist())}
    ok = by_model.get("llama-3-8b")
    assert ok is not None
    statuses = rows.status.tolist()
    cols = {name: getattr(rows, name).tolist() for name in ("latency_ms", "ttft_ms", "tpot_ms")}
    llama = [i for i, m in enumerate(rows.model.tolist()) if m == "llama-3-8b"]
    good = next(i for i in llama if statuses[i] == rows.status.dtype.type(0))
    bad = next(i for i in llama if i != good)
    assert cols["latency_ms"][good] == pytest.approx(800.0)
    assert cols["ttft_ms"][good] == pytest.approx(120.0)  # from the first-token event
    assert cols["tpot_ms"][good] == pytest.approx((800.0 - 120.0) / 100)
    assert rows.model_version.tolist()[good] == "llama-3-8b-2024-06"
    assert rows.gateway.tolist()[good] == "gw-us-east"
    assert rows.prompt_tokens.tolist()[good] == 512
    assert rows.completion_tokens.tolist()[good] == 101
    assert cols["latency_ms"][bad] == pytest.approx(400.0)
    gpt = by_model["gpt-4o"]
    assert rows.model_version.tolist()[gpt] == "gpt-4o-2024-08-06"
    assert rows.gateway.tolist()[gpt] == "llm-gateway"  # no server.address: the service
    assert cols["ttft_ms"][gpt] == pytest.approx(250.0)  # from the attribute, in seconds
    assert (rows.prompt_tokens.tolist()[gpt], rows.completion_tokens.tolist()[gpt]) == (30, 11)


def test_status_finish_reason_and_ids_as_models(encoding: str) -> None:
    from schemas.otlp import _json_spans, _proto_spans
    from schemas.otlp_genai import to_event

    reader = _proto_spans if encoding == "otlp_proto" else _json_spans
    events = [to_event(s, {}) for s in reader(ENCODERS[encoding](mixed_trace()))]
    models = [e for e in events if isinstance(e, InferenceEvent)]  # not SKIP
    ok, timeout, gpt = models
    assert (ok.status, ok.finish_reason, ok.request_id, ok.route) == (
        Status.OK,
        FinishReason.STOP,
        "chatcmpl-1",
        "chat",
    )
    assert (timeout.status, timeout.error_type, timeout.http_status) == (
        Status.TIMEOUT,
        "TimeoutError",
        504,
    )
    assert gpt.finish_reason is FinishReason.LENGTH and gpt.status is Status.OK
    assert len(gpt.request_id) == 16  # no response id: the span id, hex
    assert ok.ts.timestamp() == pytest.approx((T0 + 800 * MS) / 1e9)


def test_span_status_error_without_error_type_is_an_error(encoding: str) -> None:
    t = Spans()
    t.span("chat", T0, 100, chat(), error=True)
    batch = decode_otlp([ENCODERS[encoding](t.take())], encoding=encoding)
    assert batch.columns.status.tolist() == [list(Status).index(Status.ERROR)]


@pytest.mark.parametrize(
    ("encoding", "raw", "needle"),
    [
        ("otlp_proto", b"\xff\xff\xff not protobuf", "protobuf"),
        ("otlp_json", b"{this is not json", "not valid JSON"),
        ("otlp_json", b'{"resourceSpans": {"oops": 1}}', "expected an array"),
        (
            "otlp_json",
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
            "is not an integer",
        ),
    ],
)
def test_malformed_payloads_are_rejected_with_the_reason(
    encoding: str, raw: bytes, needle: str
) -> None:
    good = proto(mixed_trace()) if encoding == "otlp_proto" else as_json(mixed_trace())
    batch = decode_otlp([good, raw], encoding=encoding)
    assert len(batch.columns) == 3  # the good message's events are kept
    (rej,) = batch.rejects
    assert rej.index == 1 and rej.raw == raw
    assert needle in rej.reason and rej.reason.startswith(f"not an {encoding} trace export")


def test_invalid_genai_spans_dead_letter_their_message_and_keep_the_rest(encoding: str) -> None:
    negative: dict[str, Any] = {"gen_ai.usage.output_tokens": -3}
    t = Spans()
    t.span("chat", T0, 100, chat())
    t.span("chat", T0, 100, chat(**negative))
    raw = ENCODERS[encoding](t.take())
    batch = decode_otlp([raw], encoding=encoding)
    assert len(batch.columns) == 1 and batch.invalid == 1
    (rej,) = batch.rejects
    assert (
        rej.raw == raw
        and "completion_tokens" in rej.reason
        and "GenAI spans left out" in rej.reason
    )


def test_bad_encoding_and_oversize_messages() -> None:
    with pytest.raises(ValueError, match="encoding"):
        decode_otlp([], encoding="zipkin")
    batch = decode_otlp([b"x" * 100], encoding="otlp_json", max_bytes=10)
    assert "over the limit" in batch.rejects[0].reason


def test_events_in_the_future_are_rejected_like_json_events() -> None:
    t = Spans()
    t.span("chat", T0, 100, chat())
    batch = decode_otlp([proto(t.take())], encoding="otlp_proto", now=T0 / 1e9 - 3600)
    assert len(batch.columns) == 0 and "future" in batch.rejects[0].reason


def fleet_payloads(encoding: str, minutes: int, burst_from_s: int) -> Iterator[bytes]:
    """10 chat requests/s on one series; from ``burst_from_s`` on, 60 % fail; one message
    per second of spans, as a Collector batch would carry them."""
    t = Spans()
    for second in range(minutes * 60):
        for i in range(10):
            start = T0 + second * 10**9 + i * 100 * MS
            failing = second >= burst_from_s and i < 6
            attrs = chat(**({"error.type": "500"} if failing else {}))
            t.span("chat llama-3-8b", start, 300 + 10 * (i % 3), attrs, error=failing)
        yield ENCODERS[encoding](t.take())


def test_spans_through_the_broker_raise_an_error_rate_alert(
    encoding: str, embedded_broker: str, topic_name: str, consume_all: Callable[..., Any]
) -> None:
    from confluent_kafka import Producer

    from stream.config import LlmwatchConfig
    from stream.engine import Engine

    producer = Producer({"bootstrap.servers": embedded_broker, "linger.ms": 5})
    sent = 0
    for payload in fleet_payloads(encoding, minutes=8, burst_from_s=6 * 60):
        # One key: the test reads one partition, in order (the Collector can key by trace).
        producer.produce(topic_name, key=b"llama-3-8b", value=payload)
        sent += 1
    assert producer.flush(15) == 0
    records = consume_all(topic_name, expected=sent, timeout_s=30)
    assert len(records) == sent
    engine = Engine(LlmwatchConfig())
    alerts = []
    spans = 0
    for i in range(0, len(records), 20):
        batch: OtlpBatch = decode_otlp([r.value for r in records[i : i + 20]], encoding=encoding)
        assert not batch.rejects
        spans += batch.spans
        alerts += engine.process(batch.columns).alerts
    assert spans == 8 * 60 * 10
    fired = [a for a in alerts if a.detector == "error_rate" and a.status.value == "firing"]
    assert fired, [(a.detector, a.status.value) for a in alerts]
    assert fired[0].labels["model"] == "llama-3-8b"
    assert fired[0].labels["gateway"] == "gw-us-east"
    assert fired[0].starts_at.timestamp() >= T0 / 1e9 + 6 * 60


def test_otlp_json_numbers_for_64_bit_fields_are_accepted() -> None:
    t = Spans()
    t.span("chat", T0, 250, chat())
    doc = orjson.loads(as_json(t.take()))
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["startTimeUnixNano"] = int(span["startTimeUnixNano"])  # some encoders write numbers
    span["status"] = {"code": "STATUS_CODE_OK"}
    batch = decode_otlp([orjson.dumps(doc)], encoding="otlp_json")
    assert batch.columns.latency_ms.tolist() == [pytest.approx(250.0)]
