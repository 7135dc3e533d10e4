"""The notifier's YAML: receivers, the routing tree (with grouping) and inhibit rules.

Secrets never live in this file: each receiver takes its secret from Settings
(``LLMWATCH_PAGERDUTY_ROUTING_KEY`` and friends) or from a ``*_file`` path (a
mounted Kubernetes/Docker secret). A secret written inline is refused, naming
the field, so a config file can be committed and shared.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.durations import Duration
from stream.alerting.inhibit import InhibitRule, default_inhibit_rules
from stream.alerting.route import Route, receivers_named
from stream.settings import Settings, http_url_problem

# Receiver fields that would hold a secret; inline values are refused.
_INLINE_SECRETS = ("routing_key", "url", "token", "hmac_secret")
_NAME = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class NotifyConfigError(ValueError):
    """A bad notifier config; the message names the field, never a secret."""


class _Receiver(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: _NAME
    timeout_s: Duration = Field(10.0, gt=0, le=300)
    # Alertmanager's send_resolved: false tells this receiver only firing news (new
    # alerts, reminders, acknowledgements); a group that only resolves stays quiet. On by
    # default for every type (Alertmanager's Slack default is off).
    send_resolved: bool = True

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in _INLINE_SECRETS:
                if key in data:
                    raise ValueError(
                        f"{key}: secrets may not be written in the config file; "
                        f"use {key}_file or the LLMWATCH_* environment variable"
                    )
        return data

    @field_validator("api_url", "client_url", "api_base_url", "external_url", check_fields=False)
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        # notify --check must catch a mistyped endpoint, not the first failed delivery.
        problem = http_url_problem(v) if v else None
        if problem:
            raise ValueError(problem)
        return v


class PagerDutyReceiver(_Receiver):
    type: Literal["pagerduty"]
    routing_key_file: Path | None = None
    api_url: str = "https://events.pagerduty.com/v2/enqueue"
    client_url: str | None = None


class SlackWebhookReceiver(_Receiver):
    type: Literal["slack_webhook"]
    url_file: Path | None = None


class SlackBotReceiver(_Receiver):
    type: Literal["slack_bot"]
    token_file: Path | None = None
    channel: str | None = None
    api_base_url: str = "https://slack.com/api/"
    resolve_mode: Literal["update", "thread", "both"] = "both"


class WebhookReceiver(_Receiver):
    type: Literal["webhook"]
    url_file: Path | None = None
    hmac_secret_file: Path | None = None
    external_url: str = ""
    rate_per_s: float | None = Field(None, gt=0)


class AlertmanagerReceiver(_Receiver):
    """An existing Alertmanager (``POST /api/v2/alerts``); give its route
    ``group_by: ["..."]``, ``group_wait: 0`` and ``repeat_interval`` = ``resend_s`` so every
    alert is pushed at once and re-sent while it fires, as Prometheus does."""

    type: Literal["alertmanager"]
    api_url: str = Field(pattern=r"^https?://")
    resend_s: Duration = Field(60.0, gt=0)


class ConsoleReceiver(_Receiver):
    type: Literal["console"]
    path: Path | None = None


Receiver = Annotated[
    PagerDutyReceiver
    | SlackWebhookReceiver
    | SlackBotReceiver
    | WebhookReceiver
    | AlertmanagerReceiver
    | ConsoleReceiver,
    Field(discriminator="type"),
]


class RetryConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_s: Duration = Field(1.0, gt=0)
    cap_s: Duration = Field(60.0, gt=0)
    deadline_s: Duration = Field(3600.0, gt=0)


class NotifyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    receivers: list[Receiver] = Field(min_length=1)
    route: Route
    # Alertmanager's inhibit_rules; the shipped defaults (docs/notifier.md) unless given.
    inhibit_rules: list[InhibitRule] = Field(default_factory=default_inhibit_rules)
    # Where webhook externalURL/generatorURL and PagerDuty client_url point (the console);
    # unset: LLMWATCH_CONSOLE_URL, else this host's notifier port (``external_url_of``).
    external_url: str = ""
    # Extra librdkafka properties for the alerts consumer, e.g. session.timeout.ms: how
    # soon another replica takes over the partitions of one that died.
    consumer_properties: dict[str, str] = Field(default_factory=dict)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    # Alerts consumed but not yet finished by every receiver; past it, consumption pauses.
    max_in_flight: int = Field(10_000, ge=1, le=1_000_000)
    # How long an acknowledgement lasts when the request names no expiry.
    default_ack_ttl_s: Duration = Field(4 * 3600.0, gt=0)
    # Alertmanager's resolve_timeout: an alert posted to /api/v2/alerts without endsAt
    # ends this long after it was last posted (a client that stops sending it is gone).
    resolve_timeout_s: Duration = Field(300.0, gt=0)

    @property
    def quiet_on_resolve(self) -> frozenset[str]:
        """Receivers with ``send_resolved: false``."""
        return frozenset(r.name for r in self.receivers if not r.send_resolved)

    @model_validator(mode="after")
    def _routes_known(self) -> NotifyConfig:
        names = [r.name for r in self.receivers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"receivers: duplicate name(s) {', '.join(dupes)}")
        if self.route.receiver is None:
            raise ValueError("route.receiver: the root route needs a default receiver")
        for path, receiver in receivers_named(self.route):
            if receiver not in names:
                raise ValueError(f"{path}.receiver: unknown receiver {receiver!r}")
        if self.external_url and not self.external_url.startswith(("http://", "https://")):
            raise ValueError("external_url: must be an http(s) URL")
        return self


# Grouping without a config file: one group per alert name, so one incident's alerts
# (the same symptom on several gateways, hosts or series) go out as one notification.
# On the demo fleet's five incidents: 7 notifications with firing news (5 initial, 2
# updates) where ["alertname", "host", "gateway", "model"] gave 10 and ["..."] 13.
DEFAULT_GROUP_BY = ["alertname"]


def default_config(receivers: list[Receiver] | None = None) -> NotifyConfig:
    """No file: every receiver whose secret is set, plus the console; all get every alert."""
    found = list(receivers or [])
    found.append(ConsoleReceiver(type="console", name="console"))
    root = Route(
        receiver=found[0].name,
        group_by=DEFAULT_GROUP_BY,
        routes=[Route(receiver=r.name, continue_=True) for r in found],
    )
    return NotifyConfig(receivers=found, route=root)


_TYPES = frozenset(
    {"pagerduty", "slack_webhook", "slack_bot", "webhook", "alertmanager", "console"}
)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ""
        for part in err["loc"]:
            if isinstance(part, int):
                loc += f"[{part}]"
            elif part not in _TYPES:  # the union's tag adds nothing for a reader
                loc += f".{part}" if loc else str(part)
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    # One line per problem (docs/notifier.md says so): a reader fixes them all at once.
    if len(parts) == 1:
        return parts[0]
    return f"{len(parts)} problems:\n  " + "\n  ".join(parts)


def parse_config(data: Any, source: str = "notify config") -> NotifyConfig:
    if not isinstance(data, dict):
        raise NotifyConfigError(f"{source}: expected a mapping with receivers and route")
    try:
        return NotifyConfig.model_validate(data)
    except ValidationError as exc:
        raise NotifyConfigError(f"{source}: {_describe(exc)}") from None


def load_config(path: Path) -> NotifyConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotifyConfigError(f"notify_config: cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise NotifyConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, str(path))


def read_secret(path: Path, field: str) -> SecretStr:
    """One secret from a file (trailing newline dropped); the error names the field only."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise NotifyConfigError(f"{field}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise NotifyConfigError(f"{field}: {path} is empty")
    return SecretStr(value)


def external_url_of(config: NotifyConfig, settings: Settings) -> str:
    """The console's URL as links in notifications give it: the config's external_url,
    else LLMWATCH_CONSOLE_URL, else ``http://<this host's FQDN>:<notify_web_port>``, as
    Alertmanager defaults its --web.external-url, so links work without setup
    wherever this host's name resolves."""
    if config.external_url:
        return config.external_url
    if settings.console_url:
        return settings.console_url
    return f"http://{socket.getfqdn()}:{settings.notify_web_port}"
