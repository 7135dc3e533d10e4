"""Each incident kind changes its target's signal and leaves the other targets alone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from schemas.models import WIRE_MODELS
from stream.simulate import FleetSpec, Incident, IncidentKind, simulate
from stream.simulate.gpu import HW_THERMAL, SW_THERMAL
from stream.simulate.spec import gpu_uuid

START = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)
SPEC = FleetSpec(seed=11, start=START, duration_s=720.0, rate=150.0, feedback_fraction=0.25)
# Hosts serve models round-robin: node-01/04 llama-3-8b, 02/05 llama-2-13b, 03/06 llama-2-70b.
PLAN: list[tuple[IncidentKind, dict[str, str], str]] = [
    (IncidentKind.LATENCY_REGRESSION, {"model": "llama-3-8b", "model_version": "v3"}, ""),
    (IncidentKind.TTFT_SPIKE, {"gateway": "gw-eu-west", "model": "llama-2-13b"}, ""),
    (IncidentKind.ERROR_BURST, {"gateway": "gw-us-east", "model": "llama-2-70b"}, ""),
    (IncidentKind.GATEWAY_SILENT, {"gateway": "gw-ap-south"}, ""),
    (IncidentKind.GPU_THROTTLE, {"host": "gpu-node-02"}, "thermal"),
    (IncidentKind.GPU_XID, {"host": "gpu-node-04", "gpu_uuid": gpu_uuid("gpu-node-04", 3)}, "79"),
    (
        IncidentKind.GPU_MEMORY_LEAK,
        {"host": "gpu-node-05", "gpu_uuid": gpu_uuid("gpu-node-05", 1)},
        "",
    ),
    (IncidentKind.PROMPT_DRIFT, {"model": "llama-2-13b"}, ""),
    (IncidentKind.TRUNCATION_DRIFT, {"model": "llama-2-70b"}, ""),
    (IncidentKind.FEEDBACK_DECLINE, {"model": "llama-3-8b", "model_version": "v1"}, ""),
]
INCIDENTS = [
    Incident(
        kind=k, start_offset_s=70.0 + 62.0 * i, duration_s=50.0, severity=1.0, target=t, detail=d
    )
    for i, (k, t, d) in enumerate(PLAN)
]
BEFORE = (0.0, 65.0)  # no incident is active here


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return [d for chunk in simulate(SPEC, INCIDENTS) for d in chunk]


def _offset(d: dict[str, Any]) -> float:
    return datetime.fromisoformat(d["ts"]).timestamp() - START.timestamp()


def _pick(
    events: list[dict[str, Any]], kind: str, window: tuple[float, float], **labels: str
) -> list[dict[str, Any]]:
    lo, hi = window
    return [
        d
        for d in events
        if d["kind"] == kind
        and lo <= _offset(d) < hi
        and all(d.get(k) == v for k, v in labels.items())
    ]


def _during(kind: IncidentKind) -> tuple[float, float]:
    inc = next(i for i in INCIDENTS if i.kind is kind)
    return inc.start_offset_s, inc.end_offset_s


def _vals(rows: list[dict[str, Any]], field: str) -> np.ndarray:
    return np.array([d[field] for d in rows if field in d], dtype=float)


# A statistic of a list of events (the lambdas below).
Stat = Callable[[list[dict[str, Any]]], float]


def _err(rows: list[dict[str, Any]]) -> float:
    errors: int = sum(d["status"] != "ok" for d in rows)
    return errors / max(1, len(rows))


def test_every_event_in_every_incident_validates(events: list[dict[str, Any]]) -> None:
    rng = np.random.default_rng(0)
    sample = [events[i] for i in rng.choice(len(events), 3000, replace=False)]
    for inc in INCIDENTS:
        inside = [d for d in events if inc.start_offset_s <= _offset(d) < inc.end_offset_s]
        assert inside, inc.kind
        sample += [inside[i] for i in rng.choice(len(inside), min(200, len(inside)), replace=False)]
    for d in sample:
        WIRE_MODELS[d["kind"]].model_validate(d)
    ts = [d["ts"] for d in events]
    assert ts == sorted(ts)


def test_latency_regression_new_version_is_slower(events: list[dict[str, Any]]) -> None:
    w = _during(IncidentKind.LATENCY_REGRESSION)
    new = _pick(events, "inference", w, model="llama-3-8b", model_version="v3", status="ok")
    old = _pick(events, "inference", w, model="llama-3-8b", model_version="v1", status="ok")
    old_before = _pick(
        events, "inference", BEFORE, model="llama-3-8b", model_version="v1", status="ok"
    )
    assert len(new) > 200
    assert np.median(_vals(new, "tpot_ms")) > 1.6 * np.median(_vals(old, "tpot_ms"))
    assert np.median(_vals(old, "tpot_ms")) < 1.2 * np.median(_vals(old_before, "tpot_ms"))
    outside = [
        d
        for d in events
        if d["kind"] == "inference" and d["model_version"] == "v3" and not w[0] <= _offset(d) < w[1]
    ]
    assert outside == []


def test_ttft_spike_on_target_only(events: list[dict[str, Any]]) -> None:
    w = _during(IncidentKind.TTFT_SPIKE)
    hit = {"gateway": "gw-eu-west", "model": "llama-2-13b", "status": "ok"}
    spared = {"gateway": "gw-us-east", "model": "llama-2-13b", "status": "ok"}
    p99: Stat = lambda rows: float(np.percentile(_vals(rows, "ttft_ms"), 99))  # noqa: E731
    assert p99(_pick(events, "inference", w, **hit)) > 2 * p99(
        _pick(events, "inference", BEFORE, **hit)
    )
    assert p99(_pick(events, "inference", w, **spared)) < 1.5 * p99(
        _pick(events, "inference", BEFORE, **spared)
    )


def test_error_burst_on_model_and_gateway(events: list[dict[str, Any]]) -> None:
    w = _during(IncidentKind.ERROR_BURST)
    assert _err(_pick(events, "inference", w, gateway="gw-us-east", model="llama-2-70b")) > 0.15
    assert (
        _err(_pick(events, "inference", BEFORE, gateway="gw-us-east", model="llama-2-70b")) < 0.03
    )
    assert _err(_pick(events, "inference", w, gateway="gw-eu-west", model="llama-2-70b")) < 0.03
    assert _err(_pick(events, "inference", w, gateway="gw-us-east", model="llama-3-8b")) < 0.03


def test_gateway_silent(events: list[dict[str, Any]]) -> None:
    w = _during(IncidentKind.GATEWAY_SILENT)
    assert _pick(events, "inference", w, gateway="gw-ap-south") == []
    assert len(_pick(events, "inference", BEFORE, gateway="gw-ap-south")) > 500
    assert len(_pick(events, "inference", w, gateway="gw-eu-west")) > 500


def test_gpu_throttle_slows_host_and_sets_reasons(events: list[dict[str, Any]]) -> None:
    w = _during(IncidentKind.GPU_THROTTLE)
    hot = _pick(events, "gpu", w, host="gpu-node-02")
    assert all(d["clocks_event_reasons"] & (SW_THERMAL | HW_THERMAL) for d in hot)
    assert np.median(_vals(hot, "sm_clock_mhz")) < 1400
    assert np.median(_vals(hot, "temp_c")) > 85
    cool = _pick(events, "gpu", w, host="gpu-node-05")
    assert not any(d["clocks_event_reasons"] & (SW_THERMAL | HW_THERMAL) for d in cool)
    slow = _vals(_pick(events, "inference", w, host="gpu-node-02", status="ok"), "tpot_ms")
    base = _vals(_pick(events, "inference", BEFORE, host="gpu-node-02", status="ok"), "tpot_ms")
    other = _vals(_pick(events, "inference", w, host="gpu-node-05", status="ok"), "tpot_ms")
    assert np.median(slow) > 1.3 * np.median(base)
    assert np.median(other) < 1.2 * np.median(base)


def test_gpu_xid_takes_gpu_off_and_fails_host(events: list[dict[str, Any]]) -> None:
    w = _during(IncidentKind.GPU_XID)
    uuid = gpu_uuid("gpu-node-04", 3)
    rows = _pick(events, "gpu", w, gpu_uuid=uuid)
    assert [d.get("xid") for d in rows] == [79]
    assert len(_pick(events, "gpu", w, gpu_uuid=gpu_uuid("gpu-node-04", 2))) >= 49
    assert len(_pick(events, "gpu", (w[1] + 1, w[1] + 10), gpu_uuid=uuid)) >= 8  # back after reset
    assert _err(_pick(events, "inference", w, host="gpu-node-04")) > 0.3
    assert _err(_pick(events, "inference", w, host="gpu-node-01")) < 0.03
    assert not any("xid" in d for d in events if d["kind"] == "gpu" and d["gpu_uuid"] != uuid)


def test_gpu_memory_leak_creeps_up(events: list[dict[str, Any]]) -> None:
    lo, hi = _during(IncidentKind.GPU_MEMORY_LEAK)
    leaking = {"gpu_uuid": gpu_uuid("gpu-node-05", 1)}
    healthy = {"gpu_uuid": gpu_uuid("gpu-node-05", 2)}
    first = _vals(_pick(events, "gpu", (lo, lo + 5), **leaking), "mem_used_mib").mean()
    last = _vals(_pick(events, "gpu", (hi - 5, hi), **leaking), "mem_used_mib").mean()
    assert last - first > 15_000
    h_first = _vals(_pick(events, "gpu", (lo, lo + 5), **healthy), "mem_used_mib").mean()
    h_last = _vals(_pick(events, "gpu", (hi - 5, hi), **healthy), "mem_used_mib").mean()
    assert abs(h_last - h_first) < 3_000


def test_prompt_drift(events: list[dict[str, Any]]) -> None:
    w = _during(IncidentKind.PROMPT_DRIFT)
    med: Stat = lambda rows: float(np.median(_vals(rows, "prompt_tokens")))  # noqa: E731
    assert med(_pick(events, "inference", w, model="llama-2-13b")) > 2 * med(
        _pick(events, "inference", BEFORE, model="llama-2-13b")
    )
    other = med(_pick(events, "inference", w, model="llama-3-8b"))
    assert other < 1.5 * med(_pick(events, "inference", BEFORE, model="llama-3-8b"))


def test_truncation_drift(events: list[dict[str, Any]]) -> None:
    w = _during(IncidentKind.TRUNCATION_DRIFT)
    frac: Stat = lambda rows: sum(d["finish_reason"] == "length" for d in rows) / len(rows)  # noqa: E731
    assert frac(_pick(events, "inference", w, model="llama-2-70b")) > 0.2
    assert frac(_pick(events, "inference", BEFORE, model="llama-2-70b")) < 0.1
    assert frac(_pick(events, "inference", w, model="llama-2-13b")) < 0.1


def test_feedback_decline(events: list[dict[str, Any]]) -> None:
    w = _during(IncidentKind.FEEDBACK_DECLINE)
    target = {"model": "llama-3-8b", "model_version": "v1"}
    during = _vals(_pick(events, "inference", w, **target), "feedback_score")
    before = _vals(_pick(events, "inference", BEFORE, **target), "feedback_score")
    other = _vals(_pick(events, "inference", w, model="llama-2-13b"), "feedback_score")
    assert during.mean() < before.mean() - 0.3
    assert abs(other.mean() - before.mean()) < 0.25
    fb = _vals(_pick(events, "feedback", (w[0] + 30, w[1] + 10), **target), "score")
    assert len(fb) > 50 and fb.mean() < before.mean() - 0.2
