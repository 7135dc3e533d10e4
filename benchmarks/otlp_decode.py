"""OTLP GenAI span decode throughput, next to llmwatch's own JSON events.

Spans are made with the OpenTelemetry SDK and encoded by its OTLP protobuf and JSON
encoders, 100 spans per message as a Collector batch carries them; the same requests
are also encoded as llmwatch JSON events. Prints one JSON object: spans/s through
``schemas.otlp.decode_otlp`` per encoding and events/s through ``decode_columns``.

    .venv/bin/python -m benchmarks.otlp_decode [--spans N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans as json_encode
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as proto_encode
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from schemas.decode import decode_columns
from schemas.models import FinishReason, InferenceEvent, Status, dump_json
from schemas.otlp import decode_otlp

T0 = 1_717_401_600 * 10**9
PER_MESSAGE = 100


def _payloads(n: int) -> tuple[list[bytes], list[bytes], list[bytes]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "gateway"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    protos, jsons, events = [], [], []
    for i in range(n):
        start, ms = T0 + i * 10**7, 300 + i % 200
        model, gateway = f"model-{i % 3}", f"gw-{i % 4}"
        tokens = (400 + i % 100, 100 + i % 50)
        span = tracer.start_span(
            "chat",
            start_time=start,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model,
                "gen_ai.response.model": f"{model}-v1",
                "gen_ai.response.id": f"r{i}",
                "gen_ai.usage.input_tokens": tokens[0],
                "gen_ai.usage.output_tokens": tokens[1],
                "gen_ai.response.finish_reasons": ["stop"],
                "server.address": gateway,
            },
        )
        span.end(end_time=start + ms * 10**6)
        # The same request as an llmwatch JSON event.
        event = InferenceEvent(
            ts=(start + ms * 10**6) / 1e9,
            gateway=gateway,
            model=model,
            model_version=f"{model}-v1",
            route="chat",
            request_id=f"r{i}",
            status=Status.OK,
            latency_ms=float(ms),
            prompt_tokens=tokens[0],
            completion_tokens=tokens[1],
            finish_reason=FinishReason.STOP,
        )
        events.append(dump_json(event))
        if (i + 1) % PER_MESSAGE == 0 or i == n - 1:
            spans = exporter.get_finished_spans()
            exporter.clear()
            protos.append(bytes(proto_encode(spans).SerializeToString()))
            jsons.append(str(json_encode(spans).to_json()).encode())
    return protos, jsons, events


def _best(fn: Callable[[], int], repeat: int) -> float:
    best = float("inf")
    n = 0
    for _ in range(repeat):
        start = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spans", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    protos, jsons, events = _payloads(args.spans)

    def otlp(payloads: list[bytes], encoding: str) -> Callable[[], int]:
        return lambda: len(decode_otlp(payloads, encoding=encoding).columns)

    def own() -> int:
        n = 0
        for i in range(0, len(events), 1000):
            n += len(decode_columns(events[i : i + 1000], kind="inference", now=T0 / 1e9)[0])
        return n

    print(
        json.dumps(
            {
                "spans": args.spans,
                "spans_per_message": PER_MESSAGE,
                "otlp_proto_spans_per_s": round(_best(otlp(protos, "otlp_proto"), args.repeat)),
                "otlp_json_spans_per_s": round(_best(otlp(jsons, "otlp_json"), args.repeat)),
                "json_events_per_s": round(_best(own, args.repeat)),
            }
        )
    )


if __name__ == "__main__":
    main()
