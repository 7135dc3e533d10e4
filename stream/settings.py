"""Deployment settings: the one place llmwatch reads environment variables.

Every field comes from ``LLMWATCH_<FIELD>`` (nested models with ``__``), e.g.
``LLMWATCH_BOOTSTRAP_SERVERS=kafka-0:9092``. A bad value fails at start with a
message that names the field (``describe_settings_error``). Secrets are
``SecretStr``: they are revealed only inside the dict ``kafka_client_config``
returns, which is handed straight to confluent-kafka and never logged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.durations import AS_DURATION

TopicName = Annotated[str, Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
LogLevel = Literal["crit", "critical", "error", "warn", "warning", "info", "debug"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"]

# Faust takes the table store as a URL; accept the bare names people type.
_STORES = {"rocksdb": "rocksdb://", "memory": "memory://"}
_HOST_PORT = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:\d{1,5}$")


class SettingsError(ValueError):
    """Settings that do not validate; the message names each bad field, never a secret value."""


class Settings(BaseSettings):
    """Where the brokers are, what the topics are called, how the worker batches."""

    model_config = SettingsConfigDict(
        env_prefix="LLMWATCH_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    # Comma-separated host:port list; empty means "start the embedded broker".
    bootstrap_servers: str = ""
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None

    topic_inference: TopicName = "llmwatch.inference"
    topic_gpu: TopicName = "llmwatch.gpu"
    topic_metrics: TopicName = "llmwatch.metrics"
    topic_feedback: TopicName = "llmwatch.feedback"
    topic_alerts: TopicName = "llmwatch.alerts"
    topic_deadletter: TopicName = "llmwatch.deadletter"
    # Compacted: silences and acknowledgements, keyed by id (survive restarts, shared).
    topic_silences: TopicName = "llmwatch.silences"
    partitions: Annotated[int, Field(ge=1, le=10_000)] = 8

    config: Path | None = None  # detector + lifecycle YAML/TOML (LLMWATCH_CONFIG)
    store: str = "rocksdb://"  # Faust table store URL: rocksdb:// or memory://
    state_dir: Path = Path("llmwatch-state")
    web_port: Annotated[int, Field(ge=1, le=65535)] = 6066
    # Address the worker's and notifier's HTTP servers listen on; all interfaces so
    # Prometheus can scrape a container. 127.0.0.1 keeps them local.
    web_host: Annotated[str, Field(min_length=1, max_length=255)] = "0.0.0.0"
    # How long the group waits for a silent (crashed) worker before its partitions move.
    session_timeout_s: Annotated[float, Field(gt=0, le=3600), AS_DURATION] = 60.0
    # Engine state is saved at least this often while events flow (and after any batch
    # that raised alerts); a restart replays at most this much.
    checkpoint_interval_s: Annotated[float, Field(gt=0, le=3600), AS_DURATION] = 10.0
    # Most events the worker fetches in one poll and hands the engine in one batch.
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 5000
    # Longest a batch waits to fill up to batch_size: the engine's cost per batch is
    # mostly fixed, so a trickle handled fetch by fetch (a few events per partition)
    # would spend the worker's CPU on overhead. Adds at most this to alert latency.
    batch_timeout_s: Annotated[float, Field(ge=0, le=60), AS_DURATION] = 0.25
    # Longest the broker holds a fetch that found no new data. Faust's own 1,500 ms
    # costs nothing on brokers that answer as soon as data arrives, but some (the
    # embedded one among them) hold an empty fetch for the whole wait, which then
    # adds up to that much to alert latency. Lower costs a few empty fetches a second.
    fetch_wait_ms: Annotated[int, Field(ge=1, le=30_000)] = 100
    log_level: LogLevel = "warn"
    # How long a command waits at start for a configured broker to answer before it
    # gives up with one line and exit code 2 (stream.preflight).
    connect_timeout_s: Annotated[float, Field(ge=0, le=600), AS_DURATION] = 10.0
    # The node name an agent reports (GpuSample.host); default: this machine's hostname.
    host: Annotated[str, Field(min_length=1, max_length=256)] | None = None

    # Kafka protocol version to assume instead of asking the broker ("0.9" for 0.9.x
    # brokers, which predate ApiVersions); None asks the broker, right for 0.10+.
    broker_api_version: Annotated[str, Field(pattern=r"^\d+\.\d+(\.\d+){0,2}$")] | None = None

    # Notifier worker (llmwatch notify): its consumer group, web port, and the token
    # that mutating API calls (silences, acks) must carry; without one they are refused.
    notify_group: Annotated[str, Field(min_length=1, max_length=249)] = "llmwatch-notify"
    notify_web_port: Annotated[int, Field(ge=1, le=65535)] = 6067
    notify_config: Path | None = None  # routing tree + receivers YAML (LLMWATCH_NOTIFY_CONFIG)
    api_token: SecretStr | None = None

    # Notifier endpoints and secrets (used by the notifier worker only).
    slack_webhook_url: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_channel: str | None = None
    pagerduty_routing_key: SecretStr | None = None
    webhook_url: SecretStr | None = None
    webhook_secret: SecretStr | None = None

    @field_validator("bootstrap_servers")
    @classmethod
    def _hosts(cls, v: str) -> str:
        hosts = [h.strip() for h in v.split(",") if h.strip()]
        bad = [h for h in hosts if not _HOST_PORT.match(h)]
        if bad:
            raise ValueError(f"expected host:port[,host:port...], got {', '.join(bad)}")
        return ",".join(hosts)

    @field_validator("slack_webhook_url", "webhook_url")
    @classmethod
    def _url(cls, v: SecretStr | None) -> SecretStr | None:
        # Empty means "receiver off" (compose passes unset variables as ""). The value
        # is a secret: the message says what is wrong, never what was given.
        if v is not None and v.get_secret_value():
            problem = http_url_problem(v.get_secret_value())
            if problem:
                raise ValueError(problem)
        return v

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        key = v.strip().lower().removesuffix("://")
        if key not in _STORES:
            raise ValueError(f"must be rocksdb or memory, not {v!r}")
        return _STORES[key]

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _exists(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"no such file: {v}")
        return v

    @model_validator(mode="after")
    def _security_is_complete(self) -> Settings:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and self.sasl_mechanism is None:
            raise ValueError(f"sasl_mechanism: required with {self.security_protocol}")
        needs_password = self.sasl_mechanism in {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
        if sasl and needs_password and (not self.sasl_username or self.sasl_password is None):
            raise ValueError(
                f"sasl_username/sasl_password: both required with {self.sasl_mechanism}"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile/ssl_keyfile: give both or neither")
        return self

    @property
    def uses_embedded_broker(self) -> bool:
        return not self.bootstrap_servers


def http_url_problem(text: str) -> str | None:
    """Why ``text`` is not an absolute http(s) URL with a host, or None when it is one."""
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        return "not a URL (bad port or brackets)"
    if parts.scheme.lower() not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if any(c.isspace() for c in text.strip()):
        return "a URL may not contain spaces"
    return None


def describe_settings_error(exc: ValidationError) -> str:
    """One line per bad field, named as its environment variable; input values left out."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = "__".join(str(p) for p in err["loc"])
        name = f"LLMWATCH_{loc.upper()}" if loc else "settings"
        parts.append(f"{name}: {str(err['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)


def load_settings(**overrides: Any) -> Settings:
    """``Settings()`` from the environment, raising ``SettingsError`` that names the field."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_settings_error(exc)) from None


def kafka_client_config(settings: Settings) -> dict[str, str]:
    """confluent-kafka (librdkafka) client properties: brokers plus security.

    The secret values appear only here; callers pass the dict to a client and never print it.
    """
    if not settings.bootstrap_servers:
        raise ValueError("bootstrap_servers: empty; start the embedded broker or set it")
    conf: dict[str, str] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.security_protocol.lower(),
    }
    if settings.broker_api_version is not None:
        # 0.9 brokers do not answer ApiVersions; librdkafka must be told what they speak.
        conf["api.version.request"] = "false"
        conf["broker.version.fallback"] = settings.broker_api_version
    if settings.sasl_mechanism is not None:
        conf["sasl.mechanism"] = settings.sasl_mechanism
    if settings.sasl_username is not None:
        conf["sasl.username"] = settings.sasl_username
    if settings.sasl_password is not None:
        conf["sasl.password"] = settings.sasl_password.get_secret_value()
    files = {
        "ssl.ca.location": settings.ssl_cafile,
        "ssl.certificate.location": settings.ssl_certfile,
        "ssl.key.location": settings.ssl_keyfile,
    }
    conf.update({k: str(v) for k, v in files.items() if v is not None})
    if settings.ssl_key_password is not None:
        conf["ssl.key.password"] = settings.ssl_key_password.get_secret_value()
    return conf


def redacted(conf: dict[str, str]) -> dict[str, str]:
    """A client config safe to log: every password-like value replaced."""
    return {k: ("***" if "password" in k or "secret" in k else v) for k, v in conf.items()}
