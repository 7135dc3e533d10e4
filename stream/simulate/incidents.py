"""The incident catalog: a default mix over the span, labels, and names resolved to codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import numpy.typing as npt

from .spec import Fleet, FleetSpec, Incident, IncidentKind

# Before this share of the span nothing is injected, so detectors can learn a baseline.
WARMUP_FRACTION = 0.12
_SEVERITY = {
    IncidentKind.LATENCY_REGRESSION: 1.0,
    IncidentKind.TTFT_SPIKE: 1.0,
    IncidentKind.ERROR_BURST: 1.0,
    IncidentKind.GATEWAY_SILENT: 1.0,
    IncidentKind.GPU_THROTTLE: 1.0,
    IncidentKind.GPU_XID: 1.0,
    IncidentKind.GPU_MEMORY_LEAK: 1.0,
    IncidentKind.PROMPT_DRIFT: 1.0,
    IncidentKind.TRUNCATION_DRIFT: 1.0,
    IncidentKind.FEEDBACK_DECLINE: 1.0,
}


def _target(kind: IncidentKind, fleet: Fleet, rng: np.random.Generator) -> dict[str, str]:
    gw = fleet.gateways[int(rng.integers(len(fleet.gateways)))]
    m = int(rng.integers(len(fleet.models)))
    host = int(rng.integers(len(fleet.hosts)))
    gpu = fleet.gpu_uuids[host][int(rng.integers(len(fleet.gpu_uuids[host])))]
    if kind is IncidentKind.LATENCY_REGRESSION:
        return {"model": fleet.models[m], "model_version": f"v{len(fleet.versions[m]) + 1}"}
    if kind in (IncidentKind.TTFT_SPIKE, IncidentKind.ERROR_BURST):
        return {"gateway": gw, "model": fleet.models[m]}
    if kind is IncidentKind.GATEWAY_SILENT:
        return {"gateway": gw}
    if kind is IncidentKind.GPU_THROTTLE:
        return {"host": fleet.hosts[host]}
    if kind in (IncidentKind.GPU_XID, IncidentKind.GPU_MEMORY_LEAK):
        return {"host": fleet.hosts[host], "gpu_uuid": gpu}
    if kind is IncidentKind.FEEDBACK_DECLINE:
        return {"model": fleet.models[m], "model_version": fleet.versions[m][0]}
    return {"model": fleet.models[m]}


def default_incidents(spec: FleetSpec, seed: int | None = None) -> list[Incident]:
    """One incident of every kind, in shuffled order, each in its own slot after a warm-up.

    Slots never overlap in time, so no two incidents share a target at once.
    """
    rng = np.random.default_rng([spec.seed if seed is None else seed, 0x1AC1])
    fleet = Fleet.from_spec(spec)
    kinds = list(IncidentKind)
    order = rng.permutation(len(kinds))
    warm = spec.duration_s * WARMUP_FRACTION
    slot = (spec.duration_s - warm) / len(kinds)
    out: list[Incident] = []
    for i, k in enumerate(order):
        kind = kinds[int(k)]
        duration = slot * float(rng.uniform(0.45, 0.6))
        start = warm + i * slot + float(rng.uniform(0.1, 0.9)) * (slot - duration)
        detail = ""
        if kind is IncidentKind.GPU_THROTTLE:
            detail = "thermal" if rng.random() < 0.5 else "power"
        elif kind is IncidentKind.GPU_XID:
            detail = "79"
        out.append(
            Incident(
                kind=kind,
                start_offset_s=round(start, 3),
                duration_s=round(duration, 3),
                severity=round(_SEVERITY[kind] * float(rng.uniform(1.0, 1.5)), 3),
                target=_target(kind, fleet, rng),
                detail=detail,
            )
        )
    return out


def incident_id(index: int, incident: Incident) -> str:
    return f"inc-{index + 1:03d}-{incident.kind.value}"


def _iso(spec: FleetSpec, offset_s: float) -> str:
    return (
        (spec.start + timedelta(seconds=offset_s))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def labels(spec: FleetSpec, incidents: list[Incident]) -> list[dict[str, object]]:
    """Ground truth, one dict per incident, in the order given."""
    return [
        {
            "incident_id": incident_id(i, inc),
            "kind": inc.kind.value,
            "target": dict(sorted(inc.target.items())),
            "start": _iso(spec, inc.start_offset_s),
            "end": _iso(spec, min(inc.end_offset_s, spec.duration_s)),
            "severity": inc.severity,
            "detail": inc.detail,
        }
        for i, inc in enumerate(incidents)
    ]


@dataclass(frozen=True)
class Resolved:
    """An incident with its labels turned into codes (-1 = any)."""

    kind: IncidentKind
    start: float
    end: float
    severity: float
    gateway: int
    model: int
    version: int
    route: int
    host: int
    gpu: int
    detail: str

    def window(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        return (t >= self.start) & (t < self.end)

    def progress(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.clip((t - self.start) / (self.end - self.start), 0.0, 1.0)


ROUTES = ("/v1/chat/completions", "/v1/completions")


def _code(names: tuple[str, ...], value: str | None, label: str) -> int:
    if value is None:
        return -1
    if value not in names:
        raise ValueError(f"incident target {label}={value!r} is not in the fleet {list(names)}")
    return names.index(value)


def resolve(
    fleet: Fleet, incidents: list[Incident]
) -> tuple[list[Resolved], tuple[tuple[str, ...], ...]]:
    """Codes for every incident, and per model the version names including rollouts."""
    extra: list[list[str]] = [[] for _ in fleet.models]
    for inc in incidents:
        model, version = inc.target.get("model"), inc.target.get("model_version")
        if inc.kind is IncidentKind.LATENCY_REGRESSION and model in fleet.models:
            m = fleet.models.index(model)
            if version is not None and version not in fleet.versions[m] + tuple(extra[m]):
                extra[m].append(version)
    versions = tuple(fleet.versions[m] + tuple(extra[m]) for m in range(len(fleet.models)))
    out: list[Resolved] = []
    for inc in incidents:
        t = inc.target
        m = _code(fleet.models, t.get("model"), "model")
        v = -1
        if "model_version" in t:
            if m < 0:
                raise ValueError("incident target model_version needs model as well")
            v = _code(versions[m], t["model_version"], "model_version")
        h = _code(fleet.hosts, t.get("host"), "host")
        g = -1
        if "gpu_uuid" in t:
            if h < 0:
                raise ValueError("incident target gpu_uuid needs host as well")
            g = _code(fleet.gpu_uuids[h], t["gpu_uuid"], "gpu_uuid")
        out.append(
            Resolved(
                kind=inc.kind,
                start=inc.start_offset_s,
                end=inc.end_offset_s,
                severity=inc.severity,
                gateway=_code(fleet.gateways, t.get("gateway"), "gateway"),
                model=m,
                version=v,
                route=_code(ROUTES, t.get("route"), "route"),
                host=h,
                gpu=g,
                detail=inc.detail,
            )
        )
    return out, versions
