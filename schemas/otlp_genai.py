"""One OTLP span -> one ``InferenceEvent``, by the OpenTelemetry GenAI semantic conventions.

A span is a GenAI *inference* span when it names a model: ``gen_ai.request.model`` /
``gen_ai.response.model``, or the older ``llm.request.model`` / ``llm.response.model``
that OpenLLMetry emitted before the conventions settled. Agent and tool spans
(``gen_ai.operation.name`` ``invoke_agent``, ``create_agent``, ``execute_tool``) wrap
or sit beside the model calls and are skipped, so a request is not counted twice.

=======================  ==========================================================
InferenceEvent           span
=======================  ==========================================================
model                    gen_ai.request.model, else gen_ai.response.model (llm.* too)
model_version            gen_ai.response.model (the exact model served), else "unknown"
gateway                  server.address, else the resource's service.name, else "otlp"
route                    gen_ai.operation.name (chat, text_completion, ...), if set
request_id               gen_ai.response.id, else the span id
ts                       span end; latency_ms: end - start
status                   error.type or span status ERROR -> error (timeout / cancelled
                         when error.type says so); else ok
error_type, http_status  error.type, http.response.status_code
prompt/completion_tokens gen_ai.usage.input_tokens / output_tokens (older:
                         gen_ai.usage.prompt_tokens / completion_tokens,
                         llm.usage.prompt_tokens / completion_tokens)
finish_reason            gen_ai.response.finish_reasons[0] (older:
                         llm.response.finish_reason, gen_ai.completion.0.finish_reason)
ttft_ms                  gen_ai.server.time_to_first_token (seconds), else the first
                         span event named like a first token / streamed chunk
tpot_ms                  (latency - ttft) / (output tokens - 1), when both are known
=======================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from .models import FinishReason, InferenceEvent, Status


@dataclass(slots=True)
class Span:
    """The parts of an OTLP span the mapping reads, whatever the wire encoding."""

    attrs: dict[str, Any]
    resource: Mapping[str, Any]
    start_ns: int
    end_ns: int
    status_code: int  # 0 unset, 1 ok, 2 error
    span_id: str
    events: list[tuple[str, int]] = field(default_factory=list)


class _Skip:
    def __repr__(self) -> str:
        return "SKIP"


SKIP: Final = _Skip()

REQUEST_MODEL = ("gen_ai.request.model", "llm.request.model")
RESPONSE_MODEL = ("gen_ai.response.model", "llm.response.model")
INPUT_TOKENS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.usage.prompt_tokens",
)
OUTPUT_TOKENS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.usage.completion_tokens",
)
FINISH = (
    "gen_ai.response.finish_reasons",
    "llm.response.finish_reason",
    "gen_ai.completion.0.finish_reason",
)
TTFT_S = ("gen_ai.server.time_to_first_token",)
FIRST_TOKEN_EVENTS = frozenset(
    {"first_token", "gen_ai.first_token", "llm.first_token", "llm.content.completion.chunk"}
)
NOT_INFERENCE = frozenset({"invoke_agent", "create_agent", "execute_tool"})
_FINISH = {
    "stop": FinishReason.STOP,
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "eos": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "max_tokens": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "tool_use": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
    "safety": FinishReason.CONTENT_FILTER,
    "error": FinishReason.ERROR,
    "abort": FinishReason.ABORT,
    "cancelled": FinishReason.ABORT,
}
_STATUS_ERROR = 2


def _first(attrs: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    return next((attrs[n] for n in names if attrs.get(n) not in (None, "", [])), None)


def to_fields(span: Span) -> dict[str, Any] | _Skip:
    """The span's ``InferenceEvent`` fields (not yet validated: ``decode_columns`` does
    that, as for any event), or ``SKIP`` for a span that is not a GenAI inference."""
    a = span.attrs
    model = _first(a, REQUEST_MODEL) or _first(a, RESPONSE_MODEL)
    operation = a.get("gen_ai.operation.name")
    if model is None or operation in NOT_INFERENCE:
        return SKIP
    latency_ms = (span.end_ns - span.start_ns) / 1e6
    ttft_ms = _ttft_ms(span, latency_ms)
    out_tokens = _first(a, OUTPUT_TOKENS)
    fields: dict[str, Any] = {
        "kind": "inference",
        "ts": span.end_ns / 1e9,
        "model": model,
        "model_version": _first(a, RESPONSE_MODEL) or "unknown",
        "gateway": a.get("server.address") or span.resource.get("service.name") or "otlp",
        "request_id": a.get("gen_ai.response.id") or span.span_id or "unknown",
        "latency_ms": latency_ms,
        "prompt_tokens": _first(a, INPUT_TOKENS) or 0,
        "completion_tokens": out_tokens or 0,
        "finish_reason": _finish(_first(a, FINISH)),
        **_status(span),
    }
    if ttft_ms is not None:
        fields["ttft_ms"] = ttft_ms
    if operation:
        fields["route"] = operation
    if ttft_ms is not None and isinstance(out_tokens, int) and out_tokens > 1:
        fields["tpot_ms"] = max(latency_ms - ttft_ms, 0.0) / (out_tokens - 1)
    return fields


def to_event(span: Span, ctx: Mapping[str, Any]) -> InferenceEvent | _Skip:
    """``to_fields`` validated by the model (one span at a time: for tests and tools)."""
    fields = to_fields(span)
    if isinstance(fields, _Skip):
        return fields
    try:
        return InferenceEvent.model_validate(fields, context=ctx)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"{where}: {err['msg']}") from None


def _ttft_ms(span: Span, latency_ms: float) -> float | None:
    seconds = _first(span.attrs, TTFT_S)
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        ttft = float(seconds) * 1000.0
    else:
        first = min((t for name, t in span.events if name in FIRST_TOKEN_EVENTS), default=None)
        if first is None:
            return None
        ttft = (first - span.start_ns) / 1e6
    # A first token outside the span is a clock or instrumentation fault: not a TTFT.
    return ttft if 0.0 <= ttft <= latency_ms else None


def _finish(value: Any) -> FinishReason:
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, str):
        return FinishReason.UNKNOWN
    return _FINISH.get(value.lower(), FinishReason.UNKNOWN)


def _status(span: Span) -> dict[str, Any]:
    a = span.attrs
    error_type = a.get("error.type")
    out: dict[str, Any] = {"status": Status.OK.value}
    http = a.get("http.response.status_code")
    if isinstance(http, int) and not isinstance(http, bool):
        out["http_status"] = http
    if error_type or span.status_code == _STATUS_ERROR:
        kind = str(error_type or "").lower()
        out["status"] = (
            Status.TIMEOUT
            if "timeout" in kind
            else Status.CANCELLED
            if "cancel" in kind
            else Status.ERROR
        )
        out["error_type"] = str(error_type)[:256] if error_type else "span_status_error"
    return out
