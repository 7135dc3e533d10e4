"""OTLP trace payloads from Kafka -> ``InferenceEvent`` columns, one batch at a time.

The OpenTelemetry Collector's Kafka exporter writes one ``ExportTraceServiceRequest``
per message, as ``otlp_proto`` (protobuf, its default) or ``otlp_json`` (OTLP/JSON:
lowerCamelCase keys, hex ids, 64-bit integers as strings). Each GenAI inference span
becomes one event (``schemas.otlp_genai`` has the attribute mapping); other spans
(HTTP, database, tool and agent spans) are skipped and counted.

A message that does not parse goes to the dead-letter topic whole, with the reason.
A message whose GenAI spans are partly invalid keeps its valid spans and goes to the
dead-letter topic too, its reason naming the spans that were left out, so nothing
is dropped unseen (replaying it from there would repeat the valid spans).

The protobuf classes (``opentelemetry-proto``) are imported only for ``otlp_proto``,
so the light publisher install never needs them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .columns import InferenceColumns
from .decode import DEFAULT_MAX_FUTURE_SKEW_S, Reject, decode_columns
from .otlp_genai import Span, to_fields

ENCODINGS = ("otlp_proto", "otlp_json")
# The Collector batches spans into one message; Kafka's default message limit is ~1 MB.
OTLP_MAX_BYTES = 1_048_576
_MAX_REASONS = 5  # span problems quoted per message; the rest are counted


class OtlpError(ValueError):
    """A payload that is not an OTLP trace export in the declared encoding."""


@dataclass(slots=True)
class OtlpBatch:
    columns: InferenceColumns
    rejects: list[Reject] = field(default_factory=list)
    spans: int = 0  # every span seen
    skipped: int = 0  # not a GenAI inference span
    invalid: int = 0  # GenAI spans that failed validation (their messages dead-lettered)
    # The accepted events as JSON, each with its message key (``schemas.keys``: the
    # model), in the columns' order: what a bridge republishes.
    events: list[tuple[str, bytes]] = field(default_factory=list)


def decode_otlp(
    raws: Sequence[bytes],
    *,
    encoding: str,
    now: float | None = None,
    max_bytes: int = OTLP_MAX_BYTES,
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S,
) -> OtlpBatch:
    """One batch of Kafka messages to one ``InferenceColumns`` (and its rejects).

    Spans become event objects, and the batch of them goes through ``decode_columns``,
    the same columnar path and the same checks as llmwatch's own JSON events.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding: expected one of {ENCODINGS}, got {encoding!r}")
    reader = _proto_spans if encoding == "otlp_proto" else _json_spans
    out = OtlpBatch(InferenceColumns.from_rows([]))
    events: list[bytes] = []
    origin: list[tuple[int, str, str]] = []  # per event: (message index, span id, model)
    for index, raw in enumerate(raws):
        if len(raw) > max_bytes:
            out.rejects.append(Reject(index, raw, f"message over the limit ({max_bytes} B)", "$"))
            continue
        try:
            found = [to_fields(span) for span in reader(raw)]
        except (OtlpError, ValueError) as exc:
            out.rejects.append(Reject(index, raw, f"not an {encoding} trace export: {exc}", "$"))
            continue
        out.spans += len(found)
        for fields in found:
            if isinstance(fields, dict):
                events.append(orjson.dumps(fields))
                origin.append((index, str(fields["request_id"]), str(fields["model"])))
            else:
                out.skipped += 1
    wall = time.time() if now is None else now
    columns, bad = decode_columns(
        events, kind="inference", now=wall, max_future_skew_s=max_future_skew_s
    )
    out.columns = columns  # type: ignore[assignment]
    out.invalid = len(bad)
    dropped = {rej.index for rej in bad}
    out.events = [(origin[i][2], e) for i, e in enumerate(events) if i not in dropped]
    problems: dict[int, list[str]] = {}
    for rej in bad:
        index, span, _ = origin[rej.index]
        problems.setdefault(index, []).append(f"span {span}: {rej.location}: {rej.reason}")
    for index, reasons in sorted(problems.items()):
        more = len(reasons) - _MAX_REASONS
        text = "; ".join(reasons[:_MAX_REASONS]) + (f"; {more} more" if more > 0 else "")
        out.rejects.append(Reject(index, raws[index], f"GenAI spans left out: {text}", "$"))
    out.rejects.sort(key=lambda r: r.index)
    return out


# --- otlp_proto ---------------------------------------------------------------------


def _proto_spans(raw: bytes) -> Iterator[Span]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(raw)
    except DecodeError as exc:
        raise OtlpError(f"protobuf: {exc}") from None
    for rs in req.resource_spans:
        resource = {kv.key: _proto_value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                yield Span(
                    attrs={kv.key: _proto_value(kv.value) for kv in s.attributes},
                    resource=resource,
                    start_ns=s.start_time_unix_nano,
                    end_ns=s.end_time_unix_nano,
                    status_code=s.status.code,
                    span_id=s.span_id.hex(),
                    events=[(e.name, e.time_unix_nano) for e in s.events],
                )


def _proto_value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_proto_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _proto_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


# --- otlp_json ----------------------------------------------------------------------


def _json_spans(raw: bytes) -> Iterator[Span]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise OtlpError(f"not valid JSON ({exc})") from None
    for rs in _list(doc, "resourceSpans"):
        resource = _json_attrs(_obj(rs.get("resource", {}), "resource"))
        for ss in _list(rs, "scopeSpans"):
            for s in _list(ss, "spans"):
                status = _obj(s.get("status", {}), "status")
                yield Span(
                    attrs=_json_attrs(s),
                    resource=resource,
                    start_ns=_int(s.get("startTimeUnixNano", 0), "startTimeUnixNano"),
                    end_ns=_int(s.get("endTimeUnixNano", 0), "endTimeUnixNano"),
                    status_code=_status_code(status.get("code", 0)),
                    span_id=str(s.get("spanId", "")),
                    events=[
                        (str(e.get("name", "")), _int(e.get("timeUnixNano", 0), "timeUnixNano"))
                        for e in _list(s, "events")
                    ],
                )


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise OtlpError(f"{where}: expected an object")
    return value


def _list(parent: Any, key: str) -> list[Any]:
    value = _obj(parent, key).get(key, [])
    if not isinstance(value, list):
        raise OtlpError(f"{key}: expected an array")
    return [_obj(v, key) for v in value]


def _int(value: Any, where: str) -> int:
    # OTLP/JSON writes 64-bit integers as strings; some encoders write numbers.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise OtlpError(f"{where}: expected an integer")
    try:
        return int(value)
    except ValueError:
        raise OtlpError(f"{where}: {value!r} is not an integer") from None


_STATUS = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _status_code(value: Any) -> int:
    if isinstance(value, str) and value in _STATUS:
        return _STATUS[value]
    return _int(value, "status.code")


def _json_attrs(holder: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for kv in _list(holder, "attributes"):
        out[str(kv.get("key", ""))] = _json_value(kv.get("value", {}))
    return out


def _json_value(v: Any) -> Any:
    if not isinstance(v, dict) or not v:
        return None
    kind, value = next(iter(v.items()))
    if kind == "intValue":
        return _int(value, "intValue")
    if kind == "arrayValue":
        return [_json_value(x) for x in _obj(value, kind).get("values", [])]
    if kind == "kvlistValue":
        return _json_attrs({"attributes": _obj(value, kind).get("values", [])})
    return value
