"""Generic webhook speaking Alertmanager's webhook JSON (version 4), optionally HMAC-signed."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from schemas.models import Alert, AlertStatus

from .base import Clock, DeliveryResult, RateLimit, ResultFactory, SystemClock
from .http import JsonPoster
from .redact import Redactor

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


def alertmanager_payload(alert: Alert, receiver: str, external_url: str = "") -> dict[str, Any]:
    """One alert as an Alertmanager webhook message (a group of one)."""
    labels = {
        "alertname": alert.title,
        "severity": str(alert.severity),
        "detector": alert.detector,
        **alert.labels,
    }
    annotations = {"summary": alert.summary, "description": alert.explanation, **alert.annotations}
    if alert.links.runbook:
        annotations.setdefault("runbook_url", alert.links.runbook)
    annotations = {k: v for k, v in annotations.items() if v}
    status = "resolved" if alert.status == AlertStatus.RESOLVED else "firing"
    return {
        "version": "4",
        "groupKey": f'{{}}:{{fingerprint="{alert.fingerprint}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": {"fingerprint": alert.fingerprint},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": _ts(alert.starts_at),
                "endsAt": _ts(alert.ends_at),
                "generatorURL": alert.links.dashboard or "",
                "fingerprint": alert.fingerprint,
            }
        ],
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

    async def send(self, alert: Alert) -> DeliveryResult:
        body = orjson.dumps(alertmanager_payload(alert, self._name, self._config.external_url))
        headers = {}
        if self._config.hmac_secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self._config.hmac_secret)
        return await self._poster.post(alert, self._config.url.get_secret_value(), body, headers)

    async def close(self) -> None:
        await self._poster.close()
