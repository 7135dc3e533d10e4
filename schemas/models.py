"""Wire models: the single definition of every llmwatch topic's payload.

Every model carries ``schema_version``; a message with a version this build does
not know is rejected rather than guessed at. Unknown extra fields are ignored so
that a newer publisher can add optional fields without breaking older workers.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from .timestamps import MAX_EPOCH_S, parse_ts

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number (no NaN or infinity)")
    return value


def _utc(value: datetime) -> datetime:
    # Naive timestamps are taken as UTC: that is what every exporter we have seen means.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


Finite = Annotated[float, AfterValidator(_finite)]
NonNegative = Annotated[float, Field(ge=0), AfterValidator(_finite)]
Duration = NonNegative  # milliseconds
Pct = Annotated[float, Field(ge=0, le=100), AfterValidator(_finite)]
# ISO-8601 string (Z, offset, or naive = UTC) or epoch seconds (never milliseconds).
UtcDatetime = Annotated[
    datetime,
    BeforeValidator(parse_ts),
    AfterValidator(_utc),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "number", "minimum": 0, "maximum": MAX_EPOCH_S},
            ]
        },
        mode="validation",
    ),
]
# Counters end up in int64 columns; bound them so a batch can always be built.
Count = Annotated[int, Field(ge=0, lt=2**63)]
Label = Annotated[str, Field(min_length=1, max_length=256)]
OptLabel = Annotated[str, Field(max_length=256)]


class WireModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    schema_version: int = SCHEMA_VERSION

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v not in SUPPORTED_SCHEMA_VERSIONS:
            raise ValueError(
                f"unknown schema_version {v}; this build reads {sorted(SUPPORTED_SCHEMA_VERSIONS)}"
            )
        return v

    @field_validator("ts", "starts_at", check_fields=False)
    @classmethod
    def _not_in_future(cls, v: datetime, info: ValidationInfo) -> datetime:
        # Only decoders know the clock: they pass {"now": epoch_s, "max_future_skew_s": s}.
        ctx = info.context
        if not isinstance(ctx, dict) or ctx.get("now") is None:
            return v
        skew = float(ctx.get("max_future_skew_s", 300.0))
        ahead = v.timestamp() - float(ctx["now"])
        if ahead > skew:
            raise ValueError(
                f"{info.field_name} ({v.isoformat()}) is {ahead:.1f} s in the future, "
                f"beyond the allowed clock skew of {skew:g} s"
            )
        return v


class Status(StrEnum):
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    ERROR = "error"
    UNKNOWN = "unknown"


class InferenceEvent(WireModel):
    """One finished request as seen by an inference gateway."""

    kind: Literal["inference"] = "inference"
    ts: UtcDatetime
    gateway: Label
    model: Label
    model_version: Label
    route: Label = "/v1/chat/completions"
    tenant: OptLabel | None = None
    # The serving replica's host, when the gateway knows it: joins requests to GPU health.
    host: OptLabel | None = None
    request_id: Annotated[str, Field(min_length=1, max_length=128)]
    status: Status
    http_status: Annotated[int, Field(ge=100, le=599)] | None = None
    error_type: Annotated[str, Field(max_length=256)] | None = None
    latency_ms: Duration
    ttft_ms: Duration | None = None
    tpot_ms: Duration | None = None
    queue_ms: Duration | None = None
    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    finish_reason: FinishReason = FinishReason.UNKNOWN
    # Optional quality signals, for drift detection.
    feedback_score: Annotated[float, Field(ge=-1, le=1), AfterValidator(_finite)] | None = None
    refusal: bool | None = None
    toxicity: Annotated[float, Field(ge=0, le=1), AfterValidator(_finite)] | None = None
    embedding: Annotated[list[Finite], Field(max_length=64)] | None = None
    embedding_norm: NonNegative | None = None

    @field_validator("ttft_ms", "queue_ms")
    @classmethod
    def _within_latency(cls, v: float | None, info: ValidationInfo) -> float | None:
        # A field validator (not a model one) so the error's location names the field.
        latency = info.data.get("latency_ms")
        if v is not None and latency is not None and v > latency:
            raise ValueError(f"{info.field_name} ({v}) exceeds latency_ms ({latency})")
        return v


class GpuSample(WireModel):
    """One NVML reading of one GPU."""

    kind: Literal["gpu"] = "gpu"
    ts: UtcDatetime
    host: Label
    gpu_index: Annotated[int, Field(ge=0, le=1023)]
    gpu_uuid: Label
    sm_util_pct: Pct
    mem_util_pct: Pct
    mem_used_mib: NonNegative
    mem_total_mib: Annotated[float, Field(gt=0), AfterValidator(_finite)]
    temp_c: Annotated[float, Field(ge=-50, le=150), AfterValidator(_finite)]
    power_w: NonNegative
    power_limit_w: NonNegative
    sm_clock_mhz: NonNegative
    clocks_event_reasons: Annotated[int, Field(ge=0, lt=2**64)] = 0
    xid: Count | None = None
    ecc_sbe_total: Count = 0
    ecc_dbe_total: Count = 0
    pcie_replay_total: Count = 0

    @field_validator("mem_total_mib")
    @classmethod
    def _holds_used(cls, v: float, info: ValidationInfo) -> float:
        used = info.data.get("mem_used_mib")
        if used is not None and used > v:
            raise ValueError(f"mem_used_mib ({used}) exceeds mem_total_mib ({v})")
        return v


class MetricSample(WireModel):
    """A generic numeric series point (a scraped Prometheus sample, a CSV row)."""

    kind: Literal["metric"] = "metric"
    ts: UtcDatetime
    name: Annotated[str, Field(min_length=1, max_length=256)]
    labels: Annotated[dict[str, str], Field(max_length=32)] = Field(default_factory=dict)
    value: Finite


class FeedbackEvent(WireModel):
    """A user's verdict on one response, joined to the model that produced it."""

    kind: Literal["feedback"] = "feedback"
    ts: UtcDatetime
    request_id: Annotated[str, Field(min_length=1, max_length=128)]
    model: Label
    model_version: Label
    score: Annotated[float, Field(ge=-1, le=1), AfterValidator(_finite)]
    label: Annotated[str, Field(max_length=64)] | None = None


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Bounds(BaseModel):
    model_config = ConfigDict(frozen=True)

    lower: float | None = None
    upper: float | None = None


class Links(BaseModel):
    model_config = ConfigDict(frozen=True)

    runbook: str | None = None
    dashboard: str | None = None


class Alert(WireModel):
    """A firing or resolved alert, as published on the alerts topic."""

    kind: Literal["alert"] = "alert"
    alert_id: Annotated[str, Field(min_length=1, max_length=128)]
    fingerprint: Annotated[str, Field(min_length=1, max_length=64)]
    status: AlertStatus
    severity: Severity
    detector: Label
    title: Annotated[str, Field(min_length=1, max_length=512)]
    summary: Annotated[str, Field(max_length=4096)]
    labels: dict[str, str]
    observed: float | None = None
    expected: float | None = None
    bounds: Bounds = Field(default_factory=Bounds)
    score: Annotated[float, Field(ge=0, le=1)]
    starts_at: UtcDatetime
    ends_at: UtcDatetime | None = None
    explanation: Annotated[str, Field(max_length=4096)] = ""
    links: Links = Field(default_factory=Links)
    # Set by the lifecycle: the cause when this alert is the surviving one of an inhibition.
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("observed", "expected")
    @classmethod
    def _finite_or_none(cls, v: float | None) -> float | None:
        return None if v is None else _finite(v)


class DeadLetter(WireModel):
    """A message that could not be decoded, kept with the reason so nothing is lost."""

    kind: Literal["deadletter"] = "deadletter"
    topic: str
    partition: int | None = None
    offset: int | None = None
    # The raw message base64-encoded: all of it, or its first bytes when it was too big
    # for a dead letter to stay under the broker's max message size (raw_truncated).
    raw_b64: str
    reason: str
    location: str = ""
    ts: UtcDatetime
    raw_size: int | None = None  # bytes in the whole raw message
    raw_sha256: str | None = None  # hex SHA-256 of the whole raw message
    raw_truncated: bool = False


WIRE_MODELS: dict[str, type[WireModel]] = {
    "inference": InferenceEvent,
    "gpu": GpuSample,
    "metric": MetricSample,
    "feedback": FeedbackEvent,
    "alert": Alert,
    "deadletter": DeadLetter,
}


def dump_json(model: BaseModel) -> bytes:
    """Serialise with orjson (fast, and what every reader in llmwatch expects)."""
    import orjson

    data: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return orjson.dumps(data)
