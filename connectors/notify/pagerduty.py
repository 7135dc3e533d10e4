"""PagerDuty Events API v2: one incident per notification group (``dedup_key`` = group key).

A group's first firing notification triggers the incident; later ones (alerts joined,
repeats) trigger again under the same ``dedup_key``, which PagerDuty merges into the
open incident; an acknowledged group acknowledges it, a resolved group resolves it.
PagerDuty takes at most 512 KB per event: ``custom_details`` lists the firing alerts
and is cut, with a marker saying how many were left out, to stay well inside that.
Text is cleaned of bidi and zero-width characters; links are http(s) only.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from schemas.notification import GroupAlert, Notification

from .base import (
    PAGERDUTY_RATE,
    Clock,
    DeliveryResult,
    RateLimit,
    ResultFactory,
    SystemClock,
)
from .http import JsonPoster
from .redact import Redactor
from .text import clean, clip, console_link, safe_url

SUMMARY_LIMIT = 1024
# PagerDuty's documented limit is 512 KB per event; leave room for the envelope.
BODY_LIMIT = 512 * 1024
DETAILS_BUDGET = 400 * 1024
VALUE_LIMIT = 2048  # one label or explanation in custom_details
DEDUP_KEY_LIMIT = 255
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
    """Cleaned of spoofing characters and cut to ``limit`` code points with an ellipsis."""
    return clip(clean(text), limit)


def dedup_key(group_key: str) -> str:
    """The group key, or (past PagerDuty's 255 chars) a stable digest of it."""
    if len(group_key) <= DEDUP_KEY_LIMIT:
        return group_key
    return "llmwatch-" + hashlib.sha256(group_key.encode()).hexdigest()


def _first_label(labels: dict[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if labels.get(name):
            return labels[name]
    return None


def _summary(note: Notification) -> str:
    firing = note.firing
    lead = firing[0] if firing else note.alerts[0]
    text = (
        lead.alert.title if not lead.alert.summary else f"{lead.alert.title}: {lead.alert.summary}"
    )
    if len(firing) > 1:
        text = f"[{len(firing)} firing] {text} (and {len(firing) - 1} more)"
    return truncate(text, SUMMARY_LIMIT)


def _alert_details(item: GroupAlert) -> dict[str, Any]:
    a = item.alert
    return {
        "alert_id": a.alert_id,
        "fingerprint": a.fingerprint,
        "status": str(a.status),
        "severity": str(item.severity),
        "summary": truncate(a.summary, VALUE_LIMIT),
        "observed": a.observed,
        "expected": a.expected,
        "bounds": {"lower": a.bounds.lower, "upper": a.bounds.upper},
        "score": a.score,
        "starts_at": a.starts_at.isoformat(),
        "explanation": truncate(a.explanation, VALUE_LIMIT),
        "labels": {truncate(k, 256): truncate(v, VALUE_LIMIT) for k, v in item.labels.items()},
    }


def _bounded_labels(labels: dict[str, str], budget: int) -> tuple[dict[str, str], int]:
    """``labels`` with names and values cut, as many as fit ``budget`` bytes of JSON, and
    how many were left out (``group_by: [...]`` makes every label a group label)."""
    out: dict[str, str] = {}
    used = 2
    for k, v in labels.items():
        name, value = truncate(k, 256), truncate(v, VALUE_LIMIT)
        size = len(orjson.dumps({name: value}))
        if used + size > budget:
            break
        out[name] = value
        used += size
    return out, len(labels) - len(out)


def custom_details(note: Notification, budget: int = DETAILS_BUDGET) -> dict[str, Any]:
    """The group and its alerts, cut to ``budget`` bytes of JSON with a marker if cut."""
    group_labels, labels_left = _bounded_labels(dict(note.group_labels), budget // 4)
    details: dict[str, Any] = {
        "group_key": truncate(note.group_key, VALUE_LIMIT),
        "group_labels": group_labels,
        "firing": len(note.firing),
        "resolved": len(note.resolved),
        "alerts": [],
    }
    if labels_left:
        details["group_labels_truncated"] = f"{labels_left} group label(s) left out"
    used = len(orjson.dumps(details))
    shown = 0
    for item in note.alerts:
        entry = _alert_details(item)
        size = len(orjson.dumps(entry)) + 1
        if used + size > budget:
            break
        details["alerts"].append(entry)
        used += size
        shown += 1
    left = len(note.alerts) - shown + note.truncated_alerts
    if left:
        details["truncated"] = f"{left} alert(s) left out to stay within PagerDuty's 512 KB"
    return details


class PagerDutyEventBuilder:
    """Notification -> Events API v2 body (a dict; the routing key is added at send time)."""

    def __init__(self, config: PagerDutyConfig) -> None:
        self._config = config

    def build(self, note: Notification) -> dict[str, Any]:
        phase = note.phase
        event: dict[str, Any] = {
            "event_action": _ACTIONS[phase],
            "dedup_key": dedup_key(note.group_key),
        }
        if phase != "firing":
            return event
        cfg = self._config
        lead = note.firing[0]
        labels = note.common_labels() or lead.labels
        payload: dict[str, Any] = {
            "summary": _summary(note),
            "severity": str(note.severity),
            "source": truncate(_first_label(labels, cfg.source_labels) or cfg.source_fallback, 255),
            "timestamp": min(a.alert.starts_at for a in note.firing).isoformat(),
            "class": truncate(labels.get(cfg.class_label) or lead.alert.detector, 255),
            "custom_details": custom_details(note),
        }
        component = _first_label(labels, cfg.component_labels)
        if component:
            payload["component"] = truncate(component, 255)
        group = _first_label(labels, cfg.group_labels)
        if group:
            payload["group"] = truncate(group, 255)
        event["payload"] = payload
        event["client"] = cfg.client
        # The lead alert's place in the web console unless a client_url is configured.
        client_url = safe_url(cfg.client_url) or console_link(
            note.external_url, lead.alert.fingerprint
        )
        if client_url:
            event["client_url"] = client_url
        links = [
            {"href": href, "text": text}
            for href, text in (
                (safe_url(lead.alert.links.runbook), "Runbook"),
                (safe_url(lead.alert.links.dashboard), "Dashboard"),
            )
            if href
        ]
        if links:
            event["links"] = links
        image = safe_url(lead.alert.annotations.get(cfg.image_annotation))
        if image and image.startswith("https://"):
            event["images"] = [{"src": image, "alt": truncate(lead.alert.title, 256)}]
        return event


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

    def event(self, note: Notification) -> dict[str, Any]:
        """The body without the routing key (safe to log or show)."""
        return self._builder.build(note)

    async def send(self, note: Notification) -> DeliveryResult:
        body = orjson.dumps(
            {"routing_key": self._config.routing_key.get_secret_value(), **self.event(note)}
        )
        if len(body) > BODY_LIMIT:  # cannot happen with the budget above; never send it
            return self._results.permanent(note, f"event is {len(body)} bytes (max {BODY_LIMIT})")
        return await self._poster.post(note, self._config.url, body, {})

    async def close(self) -> None:
        await self._poster.close()
