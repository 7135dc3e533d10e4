"""Message keys: which events must meet in one worker.

A worker runs one engine per input partition, so events that one detector compares
must share a partition, and every publisher (gateway client, GPU agent, scraper,
simulator) must key the same way:

- inference and feedback: ``model``. Drift is per model version across gateways,
  version regression compares a new version with its predecessor, and the latency
  detector's common-load correction compares a model's series with each other: all of
  a model's series (versions, gateways, routes) must meet in one engine.
- gpu: ``host``; the per-host checks and the inhibition of that host's latency alerts
  need all of a host's GPUs together.
- metric: the canonical series key (name plus sorted labels).

Known limits: parallelism is bounded by the number of models (one very busy model is
one partition's load), and a check over a whole gateway (every model of it going
silent) runs per partition, on the models that partition carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.models import FeedbackEvent, GpuSample, InferenceEvent, MetricSample


def series_key(name: str, labels: Mapping[str, str]) -> str:
    """A canonical, order-independent key for one metric series.

    Here (not in ``schemas.columns``) so a publisher keys without numpy.
    """
    if not labels:
        return name
    inner = ",".join(f"{k}={labels[k]}" for k in sorted(labels))
    return f"{name}{{{inner}}}"


KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "inference": ("model",),
    "feedback": ("model",),
    "gpu": ("host",),
}

WireEvent = InferenceEvent | FeedbackEvent | GpuSample | MetricSample


def partition_key(kind: str, event: Mapping[str, Any]) -> str:
    """The key for a wire event given as a dict (``kind`` as in the ``kind`` field)."""
    if kind == "metric":
        return series_key(str(event["name"]), dict(event.get("labels") or {}))
    fields = KEY_FIELDS.get(kind)
    if fields is None:
        raise ValueError(f"kind: no key rule for {kind!r}")
    missing = [f for f in fields if event.get(f) is None]
    if missing:
        raise ValueError(f"{', '.join(missing)}: missing from a {kind} event (part of its key)")
    return "|".join(str(event[f]) for f in fields)


def key_of(event: WireEvent) -> str:
    """The key for a validated wire model."""
    if isinstance(event, InferenceEvent | FeedbackEvent):
        return event.model
    if isinstance(event, GpuSample):
        return event.host
    return series_key(event.name, event.labels)
