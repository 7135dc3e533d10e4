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
    bootstrap_servers: str = Field(
        "",
        description=(
            "Kafka brokers, host:port[,host:port...]; empty starts the embedded broker "
            "(worker, simulate, demo)."
        ),
    )
    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="How clients talk to the brokers."
    )
    sasl_mechanism: SaslMechanism | None = Field(
        None, description="SASL mechanism; required with SASL_PLAINTEXT and SASL_SSL."
    )
    sasl_username: str | None = Field(None, description="SASL user name (PLAIN and SCRAM).")
    sasl_password: SecretStr | None = Field(
        None, description="SASL password (PLAIN and SCRAM); a secret, never logged."
    )
    ssl_cafile: Path | None = Field(
        None, description="CA certificate file that signs the brokers' certificates."
    )
    ssl_certfile: Path | None = Field(
        None, description="Client certificate file (with ssl_keyfile) for mutual TLS."
    )
    ssl_keyfile: Path | None = Field(
        None, description="Client private key file (with ssl_certfile)."
    )
    ssl_key_password: SecretStr | None = Field(
        None, description="Password of ssl_keyfile; a secret, never logged."
    )

    topic_inference: TopicName = Field(
        "llmwatch.inference", description="Topic of inference events (gateways publish here)."
    )
    topic_gpu: TopicName = Field(
        "llmwatch.gpu", description="Topic of GPU samples (llmwatch gpu-agent, scrape)."
    )
    topic_metrics: TopicName = Field(
        "llmwatch.metrics", description="Topic of metric samples (llmwatch scrape)."
    )
    topic_feedback: TopicName = Field(
        "llmwatch.feedback", description="Topic of user feedback events."
    )
    topic_alerts: TopicName = Field(
        "llmwatch.alerts", description="Topic the worker writes alerts to and the notifier reads."
    )
    topic_deadletter: TopicName = Field(
        "llmwatch.deadletter", description="Topic for malformed events, with the reason."
    )
    # Compacted: silences and acknowledgements, keyed by id (survive restarts, shared).
    topic_silences: TopicName = Field(
        "llmwatch.silences",
        description="Compacted topic of silences and acknowledgements, keyed by id.",
    )
    partitions: Annotated[int, Field(ge=1, le=10_000)] = Field(
        8,
        description=(
            "Partitions of every llmwatch topic (llmwatch topics, and the embedded "
            "broker); the most workers that share the load."
        ),
    )

    config: Path | None = Field(
        None,
        description=(
            "Detector and lifecycle config file (.yaml/.yml/.toml); none means every default."
        ),
    )  # detector + lifecycle YAML/TOML (LLMWATCH_CONFIG)
    store: str = Field(
        "rocksdb://",
        description=(
            "Where the worker keeps table state: rocksdb (on disk, survives restarts) or memory."
        ),
    )  # Faust table store URL: rocksdb:// or memory://
    state_dir: Path = Field(
        Path("llmwatch-state"), description="Folder for the worker's and notifier's local state."
    )
    web_port: Annotated[int, Field(ge=1, le=65535)] = Field(
        6066, description="Port of the worker's HTTP server (/healthz, /metrics, /alerts)."
    )
    # Address the worker's and notifier's HTTP servers listen on; all interfaces so
    # Prometheus can scrape a container. 127.0.0.1 keeps them local.
    web_host: Annotated[str, Field(min_length=1, max_length=255)] = Field(
        "0.0.0.0",
        description=(
            "Address the worker's and notifier's HTTP servers listen on; 127.0.0.1 keeps "
            "them local."
        ),
    )
    # How long the group waits for a silent (crashed) worker before its partitions move.
    session_timeout_s: Annotated[float, Field(gt=0, le=3600), AS_DURATION] = Field(
        60.0,
        description=(
            "How long the consumer group waits for a silent (crashed) worker before its "
            "partitions move."
        ),
    )
    # Engine state is saved at least this often while events flow (and after any batch
    # that raised alerts); a restart replays at most this much.
    checkpoint_interval_s: Annotated[float, Field(gt=0, le=3600), AS_DURATION] = Field(
        10.0,
        description=(
            "Engine state is saved at least this often while events flow; a restart "
            "replays at most this much."
        ),
    )
    # Most events the worker fetches in one poll and hands the engine in one batch.
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        5000,
        description=(
            "Most events the worker fetches in one poll and hands the engine in one batch."
        ),
    )
    # Longest a batch waits to fill up to batch_size: the engine's cost per batch is
    # mostly fixed, so a trickle handled fetch by fetch (a few events per partition)
    # would spend the worker's CPU on overhead. Adds at most this to alert latency.
    batch_timeout_s: Annotated[float, Field(ge=0, le=60), AS_DURATION] = Field(
        0.25,
        description=(
            "Longest a batch waits to fill up to batch_size; adds at most this to alert latency."
        ),
    )
    # Longest the broker holds a fetch that found no new data. Faust's own 1,500 ms
    # costs nothing on brokers that answer as soon as data arrives, but some (the
    # embedded one among them) hold an empty fetch for the whole wait, which then
    # adds up to that much to alert latency. Lower costs a few empty fetches a second.
    fetch_wait_ms: Annotated[int, Field(ge=1, le=30_000)] = Field(
        100,
        description=(
            "Longest the broker holds a fetch that found no data; lower costs a few empty "
            "fetches a second."
        ),
    )
    # An upgrade whose detector state cannot be migrated re-learns that detector from the
    # source topics' retained history (stream.worker.warmup); bounded so a huge topic
    # cannot stall a takeover. It runs in the worker's loop before the partition's first
    # batch: ~43k metric rows/s measured on 2 busy cores, so 500k is ~12 s, well inside
    # the 60 s group session a blocked loop cannot heartbeat through.
    warmup_max_rows: Annotated[int, Field(ge=0, le=1_000_000_000)] = Field(
        500_000,
        description=(
            "Most retained events per partition a detector that restored fresh re-learns "
            "from after an upgrade (the newest ones); 0 disables the warm-up."
        ),
    )
    log_level: LogLevel = Field("warn", description="Log level of the worker and the notifier.")
    # How long a command waits at start for a configured broker to answer before it
    # gives up with one line and exit code 2 (stream.preflight).
    connect_timeout_s: Annotated[float, Field(ge=0, le=600), AS_DURATION] = Field(
        10.0,
        description=(
            "How long a command waits at start for the brokers to answer before it exits "
            "with code 2."
        ),
    )
    # The node name an agent reports (GpuSample.host); default: this machine's hostname.
    host: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None,
        description=("Node name agents report (GpuSample.host); default: this machine's hostname."),
    )

    # Kafka protocol version to assume instead of asking the broker ("0.9" for 0.9.x
    # brokers, which predate ApiVersions); None asks the broker, right for 0.10+.
    broker_api_version: Annotated[str, Field(pattern=r"^\d+\.\d+(\.\d+){0,2}$")] | None = Field(
        None,
        description=(
            'Kafka protocol version to assume instead of asking ("0.9" for 0.9.x brokers, '
            "which predate ApiVersions); none asks."
        ),
    )

    # Notifier worker (llmwatch notify): its consumer group, web port, and the token
    # that mutating API calls (silences, acks) must carry; without one they are refused.
    notify_group: Annotated[str, Field(min_length=1, max_length=249)] = Field(
        "llmwatch-notify", description="Consumer group of the notifier replicas."
    )
    notify_web_port: Annotated[int, Field(ge=1, le=65535)] = Field(
        6067, description="Port of the notifier's HTTP API (silences, acks, alerts)."
    )
    notify_config: Path | None = Field(
        None,
        description=(
            "Notifier routing tree and receivers YAML; none means every receiver whose "
            "secret is set, plus the console."
        ),
    )  # routing tree + receivers YAML (LLMWATCH_NOTIFY_CONFIG)
    console_url: str = Field(
        "",
        description=(
            "Where people open the notifier's web console; the worker's / links there "
            "(default: the same host, port notify_web_port)."
        ),
    )
    worker_url: str = Field(
        "",
        description=(
            "Base URL of a worker's web port (e.g. http://worker:6066); the notifier's "
            "console reads pending alerts and series charts from it (none: not shown)."
        ),
    )
    api_token: SecretStr | None = Field(
        None,
        description=(
            "Bearer token that mutating API calls (silences, acks) must carry; without "
            "one they are refused. A secret."
        ),
    )

    # Notifier endpoints and secrets (used by the notifier worker only).
    slack_webhook_url: SecretStr | None = Field(
        None, description="Slack incoming-webhook URL (turns on the slack receiver); a secret."
    )
    slack_bot_token: SecretStr | None = Field(
        None,
        description=(
            "Slack bot token (with slack_channel, turns on the slack-bot receiver); a secret."
        ),
    )
    slack_channel: str | None = Field(None, description="Channel the Slack bot posts to.")
    pagerduty_routing_key: SecretStr | None = Field(
        None,
        description=(
            "PagerDuty Events v2 routing key (turns on the pagerduty receiver); a secret."
        ),
    )
    webhook_url: SecretStr | None = Field(
        None,
        description=("URL alerts are POSTed to as JSON (turns on the webhook receiver); a secret."),
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description=("HMAC-SHA256 key the webhook receiver signs its requests with; a secret."),
    )

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

    @field_validator("console_url", "worker_url")
    @classmethod
    def _console(cls, v: str) -> str:
        problem = http_url_problem(v) if v.strip() else None
        if problem:
            raise ValueError(problem)
        return v.strip()

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
