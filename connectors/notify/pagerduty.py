"""PagerDuty Events API v2: trigger on firing, acknowledge, resolve; dedup_key = fingerprint."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from schemas.models import Alert

from .base import (
    PAGERDUTY_RATE,
    Clock,
    DeliveryResult,
    RateLimit,
    ResultFactory,
    SystemClock,
    phase_of,
)
from .http import JsonPoster
from .redact import Redactor

SUMMARY_LIMIT = 1024
_ACTIONS = {"firing": "trigger", "acknowledged": "acknowledge", "resolved": "resolve"}


class PagerDutyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    routing_key: SecretStr
    url: str = "https://events.pagerduty.com/v2/enqueue"
    client: str = "llmwatch"
    client_url: str | None = None
    timeout_s: float = Field(10.0, gt=0)
    # The first label present wins; the fallback keeps the required `source` non-empty.
    source_labels: tuple[str, ...] = ("host", "instance", "gateway")
    source_fallback: str = "llmwatch"
    component_labels: tuple[str, ...] = ("component", "model", "gpu_uuid")
    group_labels: tuple[str, ...] = ("group", "service", "gateway")
    class_label: str = "class"
    image_annotation: str = "image_url"


def truncate(text: str, limit: int) -> str:
    """Cut to ``limit`` code points with an ellipsis; never splits a surrogate pair."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _first_label(labels: dict[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if labels.get(name):
            return labels[name]
    return None


class PagerDutyEventBuilder:
    """Alert -> Events API v2 body (a dict; the routing key is added at send time)."""

    def __init__(self, config: PagerDutyConfig) -> None:
        self._config = config

    def build(self, alert: Alert) -> dict[str, Any]:
        phase = phase_of(alert)
        event: dict[str, Any] = {
            "event_action": _ACTIONS[phase],
            "dedup_key": alert.fingerprint,
        }
        if phase != "firing":
            return event
        cfg = self._config
        payload: dict[str, Any] = {
            "summary": truncate(
                alert.title if not alert.summary else f"{alert.title}: {alert.summary}",
                SUMMARY_LIMIT,
            ),
            "severity": str(alert.severity),
            "source": _first_label(alert.labels, cfg.source_labels) or cfg.source_fallback,
            "timestamp": alert.starts_at.isoformat(),
            "class": alert.labels.get(cfg.class_label) or alert.detector,
            "custom_details": self._details(alert),
        }
        component = _first_label(alert.labels, cfg.component_labels)
        if component:
            payload["component"] = component
        group = _first_label(alert.labels, cfg.group_labels)
        if group:
            payload["group"] = group
        event["payload"] = payload
        event["client"] = cfg.client
        if cfg.client_url:
            event["client_url"] = cfg.client_url
        links = [
            {"href": href, "text": text}
            for href, text in (
                (alert.links.runbook, "Runbook"),
                (alert.links.dashboard, "Dashboard"),
            )
            if href
        ]
        if links:
            event["links"] = links
        image = alert.annotations.get(cfg.image_annotation)
        if image and image.startswith("https://"):
            event["images"] = [{"src": image, "alt": truncate(alert.title, 256)}]
        return event

    @staticmethod
    def _details(alert: Alert) -> dict[str, Any]:
        details: dict[str, Any] = {
            "alert_id": alert.alert_id,
            "detector": alert.detector,
            "score": alert.score,
            "observed": alert.observed,
            "expected": alert.expected,
            "bounds": {"lower": alert.bounds.lower, "upper": alert.bounds.upper},
            "explanation": alert.explanation,
            "labels": dict(alert.labels),
        }
        if alert.annotations:
            details["annotations"] = dict(alert.annotations)
        return details


class PagerDutyNotifier:
    def __init__(self, name: str, config: PagerDutyConfig, clock: Clock | None = None) -> None:
        self._name = name
        self._config = config
        self._builder = PagerDutyEventBuilder(config)
        clock = clock or SystemClock()
        self._results = ResultFactory(name, Redactor([config.routing_key]))
        self._poster = JsonPoster(self._results, clock, config.timeout_s)

    @property
    def name(self) -> str:
        return self._name

    @property
    def rate_limit(self) -> RateLimit | None:
        return PAGERDUTY_RATE

    def event(self, alert: Alert) -> dict[str, Any]:
        """The body without the routing key (safe to log or show)."""
        return self._builder.build(alert)

    async def send(self, alert: Alert) -> DeliveryResult:
        body = {"routing_key": self._config.routing_key.get_secret_value(), **self.event(alert)}
        return await self._poster.post(alert, self._config.url, orjson.dumps(body), {})

    async def acknowledge(self, alert: Alert) -> DeliveryResult:
        """Acknowledge an incident explicitly (the same as an ``acknowledged`` annotation)."""
        acked = alert.model_copy(
            update={"annotations": {**alert.annotations, "acknowledged": "true"}}
        )
        return await self.send(acked)

    async def close(self) -> None:
        await self._poster.close()
