"""What to simulate: the fleet (who serves what where) and the incidents to inject."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from schemas.durations import AS_DURATION


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class IncidentKind(StrEnum):
    LATENCY_REGRESSION = "latency_regression"
    TTFT_SPIKE = "ttft_spike"
    ERROR_BURST = "error_burst"
    GATEWAY_SILENT = "gateway_silent"
    GPU_THROTTLE = "gpu_throttle"
    GPU_XID = "gpu_xid"
    GPU_MEMORY_LEAK = "gpu_memory_leak"
    PROMPT_DRIFT = "prompt_drift"
    TRUNCATION_DRIFT = "truncation_drift"
    FEEDBACK_DECLINE = "feedback_decline"


# Labels each kind must name: exactly what the alert that catches it will carry.
REQUIRED_TARGET: dict[IncidentKind, tuple[str, ...]] = {
    IncidentKind.LATENCY_REGRESSION: ("model", "model_version"),
    IncidentKind.TTFT_SPIKE: ("gateway", "model"),
    IncidentKind.ERROR_BURST: ("gateway", "model"),
    IncidentKind.GATEWAY_SILENT: ("gateway",),
    IncidentKind.GPU_THROTTLE: ("host",),
    IncidentKind.GPU_XID: ("host", "gpu_uuid"),
    IncidentKind.GPU_MEMORY_LEAK: ("host", "gpu_uuid"),
    IncidentKind.PROMPT_DRIFT: ("model",),
    IncidentKind.TRUNCATION_DRIFT: ("model",),
    IncidentKind.FEEDBACK_DECLINE: ("model", "model_version"),
}
TARGET_LABELS = ("gateway", "model", "model_version", "route", "host", "gpu_uuid")


class Incident(BaseModel):
    """One injected fault. ``severity`` is a magnitude (1.0 = a clear, typical incident).

    Per kind: latency_regression multiplies the new version's latency by 1 + severity;
    ttft_spike adds queueing up to ~severity x 4 s; error_burst fails 30% x severity of the
    target's requests; gateway_silent drops min(1, severity) of the gateway's traffic;
    gpu_throttle cuts clocks by ~35% x severity (detail "thermal" or "power");
    gpu_xid takes a GPU off the bus (detail: the XID code, default 79); gpu_memory_leak
    grows memory toward full by severity; prompt_drift scales prompts by 1 + 2 x severity;
    truncation_drift adds 30% x severity finish_reason=length; feedback_decline lowers
    mean feedback by ~0.6 x severity and, as a real quality regression of a version
    does, shows in its requests too: refusals +2 points x severity (from 1.5%) and
    finish_reason=length +2 points x severity (from 4%), drawn from the same random
    numbers as ever (only the probabilities move), so every other row is unchanged.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: IncidentKind
    start_offset_s: Annotated[float, Field(ge=0), AS_DURATION]
    duration_s: Annotated[float, Field(gt=0), AS_DURATION]
    severity: Annotated[float, Field(gt=0, le=10)] = 1.0
    target: dict[str, str]
    detail: str = ""

    @model_validator(mode="after")
    def _target_names_labels(self) -> Incident:
        unknown = sorted(set(self.target) - set(TARGET_LABELS))
        if unknown:
            raise ValueError(f"target: unknown label(s) {unknown}; use {list(TARGET_LABELS)}")
        missing = [k for k in REQUIRED_TARGET[self.kind] if k not in self.target]
        if missing:
            raise ValueError(f"target: {self.kind.value} needs label(s) {missing}")
        return self

    @property
    def end_offset_s(self) -> float:
        return self.start_offset_s + self.duration_s


class FleetSpec(BaseModel):
    """The simulated fleet. ``versions`` gives each model's live version count (cycled)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 7
    start: Annotated[datetime, AfterValidator(_utc)] = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)
    duration_s: Annotated[float, Field(gt=0, le=30 * 86400), AS_DURATION] = 600.0
    rate: Annotated[float, Field(gt=0, le=1e6)] = 300.0
    gateways: tuple[str, ...] = ("gw-us-east", "gw-eu-west", "gw-ap-south")
    models: tuple[str, ...] = ("llama-3-8b", "llama-2-13b", "llama-2-70b")
    versions: tuple[Annotated[int, Field(ge=1, le=9)], ...] = (2, 1, 2)
    hosts: Annotated[int, Field(ge=1, le=4096)] = 6
    gpus_per_host: Annotated[int, Field(ge=1, le=64)] = 8
    gpu_interval_s: Annotated[float, Field(gt=0), AS_DURATION] = 1.0
    feedback_fraction: Annotated[float, Field(ge=0, le=1)] = 0.02
    data_dir: Path | None = None

    @model_validator(mode="after")
    def _shape(self) -> FleetSpec:
        if not self.gateways or not self.models or not self.versions:
            raise ValueError("gateways, models and versions must not be empty")
        if self.hosts < len(self.models):
            raise ValueError(f"hosts ({self.hosts}) must be at least the number of models")
        return self


def size_class(model: str) -> str:
    """7b / 13b / 70b from a model name; the latency pools are per size class."""
    m = re.search(r"(\d+(?:\.\d+)?)b\b", model.lower())
    params = float(m.group(1)) if m else 13.0
    return "7b" if params < 10 else "13b" if params < 30 else "70b"


def gpu_uuid(host: str, index: int) -> str:
    digest = hashlib.sha256(f"{host}/{index}".encode()).digest()[:16]
    return f"GPU-{uuid.UUID(bytes=digest)}"


@dataclass(frozen=True)
class Fleet:
    """Names resolved to integer codes: the generators work on codes, dicts get names."""

    gateways: tuple[str, ...]
    models: tuple[str, ...]
    sizes: tuple[str, ...]
    versions: tuple[tuple[str, ...], ...]  # per model, live versions
    hosts: tuple[str, ...]
    host_model: tuple[int, ...]  # each host serves one model
    model_hosts: tuple[tuple[int, ...], ...]
    gpu_uuids: tuple[tuple[str, ...], ...]  # per host
    gateway_weight: tuple[float, ...]
    model_weight: tuple[float, ...]

    @classmethod
    def from_spec(cls, spec: FleetSpec) -> Fleet:
        n_models = len(spec.models)
        hosts = tuple(f"gpu-node-{i + 1:02d}" for i in range(spec.hosts))
        host_model = tuple(i % n_models for i in range(spec.hosts))
        versions = tuple(
            tuple(f"v{k + 1}" for k in range(spec.versions[m % len(spec.versions)]))
            for m in range(n_models)
        )
        gw_w = [1.0 / (i + 1) for i in range(len(spec.gateways))]
        model_w = [0.6**i for i in range(n_models)]
        return cls(
            gateways=spec.gateways,
            models=spec.models,
            sizes=tuple(size_class(m) for m in spec.models),
            versions=versions,
            hosts=hosts,
            host_model=host_model,
            model_hosts=tuple(
                tuple(h for h in range(spec.hosts) if host_model[h] == m) for m in range(n_models)
            ),
            gpu_uuids=tuple(
                tuple(gpu_uuid(h, g) for g in range(spec.gpus_per_host)) for h in hosts
            ),
            gateway_weight=tuple(w / sum(gw_w) for w in gw_w),
            model_weight=tuple(w / sum(model_w) for w in model_w),
        )

    def version_names(self, model: int, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
        return self.versions[model] + tuple(v for v in extra if v not in self.versions[model])
