"""Generic webhook speaking Alertmanager's webhook JSON (version 4), optionally HMAC-signed.

One POST per group notification, shaped exactly as Alertmanager's: ``groupKey``,
``status``, ``groupLabels``, ``commonLabels``, ``commonAnnotations``, ``externalURL``,
``truncatedAlerts`` and ``alerts[]`` with ``generatorURL`` and ``fingerprint``, so any
receiver written for Alertmanager (and its templates) takes it as is.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from schemas.notification import GroupAlert, Notification, annotations_of

from .base import Clock, DeliveryResult, RateLimit, ResultFactory, SystemClock
from .http import JsonPoster
from .redact import Redactor
from .text import console_link, safe_url

SIGNATURE_HEADER = "X-Llmwatch-Signature"
# Alertmanager's zero time, for "not ended yet".
ZERO_TIME = "0001-01-01T00:00:00Z"


class WebhookConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # A SecretStr: webhook URLs often carry a token in the path or query.
    url: SecretStr
    hmac_secret: SecretStr | None = None
    external_url: str = ""
    timeout_s: float = Field(10.0, gt=0)
    rate_per_s: float | None = Field(None, gt=0)
    burst: int = Field(5, ge=1)


def _ts(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z") if value is not None else ZERO_TIME


def _alert(item: GroupAlert, external_url: str) -> dict[str, Any]:
    a = item.alert
    generator = safe_url(a.links.dashboard) or console_link(external_url, a.fingerprint) or ""
    return {
        "status": str(a.status),
        "labels": dict(item.labels),
        "annotations": annotations_of(a),
        "startsAt": _ts(a.starts_at),
        "endsAt": _ts(a.ends_at),
        "generatorURL": generator,
        "fingerprint": a.fingerprint,
    }


def alertmanager_payload(
    note: Notification, receiver: str | None = None, external_url: str | None = None
) -> dict[str, Any]:
    """One group notification as an Alertmanager webhook message (version 4)."""
    url = safe_url(note.external_url if external_url is None else external_url) or ""
    return {
        "version": "4",
        "groupKey": note.group_key,
        "truncatedAlerts": note.truncated_alerts,
        "status": note.status,
        "receiver": receiver or note.receiver,
        "groupLabels": dict(note.group_labels),
        "commonLabels": note.common_labels(),
        "commonAnnotations": note.common_annotations(),
        "externalURL": url,
        "alerts": [_alert(item, url) for item in note.alerts],
    }


def sign(body: bytes, secret: SecretStr) -> str:
    """``sha256=<hex>`` HMAC of the exact body bytes (what a receiver recomputes)."""
    digest = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookNotifier:
    def __init__(self, name: str, config: WebhookConfig, clock: Clock | None = None) -> None:
        self._name = name
        self._config = config
        clock = clock or SystemClock()
        results = ResultFactory(name, Redactor([config.url, config.hmac_secret]))
        self._poster = JsonPoster(results, clock, config.timeout_s)

    @property
    def name(self) -> str:
        return self._name

    @property
    def rate_limit(self) -> RateLimit | None:
        if self._config.rate_per_s is None:
            return None
        return RateLimit(self._config.rate_per_s, self._config.burst)

    async def send(self, note: Notification) -> DeliveryResult:
        external = self._config.external_url or note.external_url
        body = orjson.dumps(alertmanager_payload(note, self._name, external))
        headers = {}
        if self._config.hmac_secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self._config.hmac_secret)
        return await self._poster.post(note, self._config.url.get_secret_value(), body, headers)

    async def close(self) -> None:
        await self._poster.close()
