"""An existing Alertmanager as a receiver: alerts pushed to ``POST /api/v2/alerts``.

The way Prometheus does it: every firing alert is sent with ``endsAt`` a few resend
intervals ahead and sent again while it fires (a route with ``repeat_interval`` =
``resend_s`` does that), so Alertmanager resolves it on its own if llmwatch goes
away; a resolve is sent with the alert's real ``endsAt``. Alertmanager then groups,
inhibits, silences and routes with its own configuration, for teams that already
run one. Labels are the ones the alert's episode fired with (``severity`` included).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from schemas.notification import GroupAlert, Notification, annotations_of

from .base import Clock, DeliveryResult, RateLimit, ResultFactory, SystemClock
from .http import JsonPoster
from .redact import Redactor
from .text import safe_url

# Prometheus sets endsAt to now + 4 x max(resend delay, evaluation interval).
RESEND_FACTOR = 4


class AlertmanagerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # The Alertmanager's base URL (``https://am.example:9093``); a SecretStr because it
    # may carry basic-auth credentials.
    url: SecretStr
    resend_s: float = Field(60.0, gt=0)
    timeout_s: float = Field(10.0, gt=0)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def postable(item: GroupAlert, now: float, resend_s: float) -> dict[str, Any]:
    """One alert as Alertmanager's ``postableAlert``."""
    a = item.alert
    if item.firing or a.ends_at is None:
        ends = dt.datetime.fromtimestamp(now + RESEND_FACTOR * resend_s, dt.UTC)
    else:
        ends = a.ends_at
    body: dict[str, Any] = {
        "labels": dict(item.labels),
        "annotations": annotations_of(a),
        "startsAt": _iso(a.starts_at),
        "endsAt": _iso(ends),
    }
    generator = safe_url(a.links.dashboard)
    if generator:
        body["generatorURL"] = generator
    return body


class AlertmanagerNotifier:
    def __init__(self, name: str, config: AlertmanagerConfig, clock: Clock | None = None) -> None:
        self._name = name
        self._config = config
        self._clock = clock or SystemClock()
        results = ResultFactory(name, Redactor([config.url]))
        self._poster = JsonPoster(results, self._clock, config.timeout_s)

    @property
    def name(self) -> str:
        return self._name

    @property
    def rate_limit(self) -> RateLimit | None:
        return None

    def body(self, note: Notification) -> list[dict[str, Any]]:
        now = self._clock.now()
        return [postable(item, now, self._config.resend_s) for item in note.alerts]

    async def send(self, note: Notification) -> DeliveryResult:
        url = self._config.url.get_secret_value().rstrip("/") + "/api/v2/alerts"
        return await self._poster.post(note, url, orjson.dumps(self.body(note)), {})

    async def close(self) -> None:
        await self._poster.close()
