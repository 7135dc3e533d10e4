"""``POST /api/v2/alerts``: Prometheus-style alerts (the spec's ``postableAlerts``) as
llmwatch alerts.

The handler does not feed the pipeline directly: it publishes the converted alerts to
the alerts topic, keyed as the worker keys its own (``topic_key``), so they take the
one path every alert takes -- the replica that owns the partition groups them, the
offset is committed only once delivered, and the ledger dedups a redelivery. Injected
straight into the pipeline of whichever replica answered the HTTP call, an alert would
have no offset to settle, could split a group across replicas, and would be gone on a
restart.

A body is taken whole or refused whole (400 naming the field): nothing is published
from a batch with one bad alert, so a client's retry cannot double the good ones.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import ValidationError

from schemas.models import Alert, AlertStatus, Links, Severity
from stream.alerting.labels import fingerprint

from .api_models import describe

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_SEVERITIES = ", ".join(s.value for s in Severity)
MAX_ALERTS = 1000  # per request; the 64 KiB body limit usually binds first


def _when(raw: Any, field: str) -> float | None:
    """Epoch seconds; None for absent, empty, or Go's zero time (amtool's "unset")."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ValueError(f"{field}: expected an RFC 3339 date-time string")
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{field}: not an RFC 3339 date-time: {raw[:64]!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return None if value.year <= 1 else value.timestamp()


def _label_set(raw: Any, field: str, *, names_checked: bool) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ValueError(f"{field}: expected an object of string values")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise ValueError(f"{field}.{key}: expected a string value")
        if names_checked and not _LABEL_NAME.match(key):
            raise ValueError(f"{field}.{key}: not a valid label name")
        out[key] = value
    return out


def _severity(labels: dict[str, str], field: str) -> Severity:
    raw = labels.get("severity", Severity.WARNING.value)
    try:
        return Severity(raw.lower())
    except ValueError:
        # llmwatch routes on these four; a value it cannot keep is refused, not rewritten.
        raise ValueError(
            f"{field}.labels.severity: {raw[:64]!r} is not one of {_SEVERITIES}"
        ) from None


def _one(raw: Any, field: str, now: float, timeout_s: float) -> Alert:
    if not isinstance(raw, dict):
        raise ValueError(f"{field}: expected a postableAlert object")
    if "labels" not in raw:
        raise ValueError(f"{field}.labels: required")
    labels = _label_set(raw["labels"], f"{field}.labels", names_checked=True)
    if not labels:
        raise ValueError(f"{field}.labels: at least one label")
    notes = _label_set(raw.get("annotations", {}), f"{field}.annotations", names_checked=False)
    starts = _when(raw.get("startsAt"), f"{field}.startsAt")
    starts = now if starts is None else starts
    ends = _when(raw.get("endsAt"), f"{field}.endsAt")
    if ends is not None and ends < starts:
        raise ValueError(f"{field}.endsAt: before startsAt")
    if ends is None:  # Alertmanager's resolve_timeout: it ends unless posted again
        ends = max(now, starts) + timeout_s
    url = raw.get("generatorURL", "")
    if not isinstance(url, str):
        raise ValueError(f"{field}.generatorURL: expected a string")
    severity = _severity(labels, field)
    kept = {k: v for k, v in labels.items() if k != "severity"}
    body = {
        "alert_id": f"am-{fingerprint(labels)}-{int(starts)}",
        "fingerprint": fingerprint(labels),
        "status": AlertStatus.RESOLVED if ends is not None and ends <= now else AlertStatus.FIRING,
        "severity": severity,
        "detector": labels.get("detector", "alertmanager-api"),
        "title": labels.get("alertname", "unnamed"),
        "summary": notes.get("summary", notes.get("description", "")),
        "labels": kept,
        "score": 1.0,  # an outside alert carries no anomaly score: treated as certain
        "starts_at": dt.datetime.fromtimestamp(starts, dt.UTC),
        "ends_at": dt.datetime.fromtimestamp(ends, dt.UTC) if ends is not None else None,
        "links": Links(dashboard=url if url.startswith(("http://", "https://")) else None),
        "annotations": notes,
    }
    try:
        return Alert.model_validate(body)
    except ValidationError as exc:
        raise ValueError(f"{field}: {describe(exc)}") from None


def postable_alerts(data: Any, now: float, resolve_timeout_s: float = 300.0) -> list[Alert]:
    """The body's alerts, converted; ValueError naming the field on the first bad one.

    Every alert carries when it ends: its ``endsAt``, or ``resolve_timeout_s`` after
    ``now`` without one (Alertmanager's rule). The notifier resolves a firing alert at
    that time unless it is posted again first (``Pipeline.expire``)."""
    if not isinstance(data, list):
        raise ValueError("body: expected a postableAlerts array")
    if len(data) > MAX_ALERTS:
        raise ValueError(f"body: at most {MAX_ALERTS} alerts per request")
    return [_one(item, f"alerts[{i}]", now, resolve_timeout_s) for i, item in enumerate(data)]
