"""Shared builders for the lifecycle tests (not a test module itself)."""

from __future__ import annotations

from typing import Any

from detectors.base import Finding
from stream.lifecycle import Lifecycle
from stream.lifecycle_config import LifecycleConfig, default_rules

T0 = 1_700_000_000.0


def finding(
    score: float = 0.9,
    *,
    anomalous: bool | None = None,
    detector: str = "latency",
    kind: str = "latency.ttft_p99",
    series: dict[str, str] | None = None,
    scope: dict[str, str] | None = None,
    ts: float = float("nan"),  # no time of its own: the lifecycle takes it at ``now``
    **kw: Any,
) -> Finding:
    return Finding(
        detector=detector,
        kind=kind,
        series=series if series is not None else {"model": "m1", "host": "h1"},
        ts=ts,
        score=score,
        anomalous=(score >= 0.5) if anomalous is None else anomalous,
        scope=scope or {},
        **kw,
    )


def lifecycle(**cfg: Any) -> Lifecycle:
    # Immediate firing everywhere, the shipped per-detector waits included, and no
    # sample-counted rules, so each test states the timers it is about.
    timers = {"for_s": 0.0, "for_samples": 1, "keep_firing_for_samples": 0}
    base: dict[str, Any] = {
        "defaults": dict(timers),
        "rules": {name: dict(timers) for name in default_rules()},
        "resolve_timeout_samples": 0,
        "flap_window_samples": 0,
    }
    for key, value in cfg.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return Lifecycle(LifecycleConfig.model_validate(base))
