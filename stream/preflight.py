"""Before a command starts Faust or a client: are the configured Kafka brokers there?

Without this, a wrong ``LLMWATCH_BOOTSTRAP_SERVERS`` showed up as hundreds of
librdkafka log lines and a traceback. Here it is one line naming the variable,
and the CLI exits with code 2 (a configuration error), which is what a restart
policy (compose, Kubernetes) needs to retry without flooding the logs.

Two steps: a TCP connect to each bootstrap address (any Kafka version, 0.9 too),
then, for brokers new enough to answer ApiVersions, a metadata request with
librdkafka's own log lines captured, which catches a TLS or SASL mistake.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from stream.settings import Settings, kafka_client_config

# librdkafka's log lines go here instead of stderr; only the last error is shown.
_RDKAFKA_LOG = logging.getLogger("llmwatch.preflight.librdkafka")
_RDKAFKA_LOG.propagate = False
_RDKAFKA_LOG.addHandler(logging.NullHandler())


class BrokerUnreachable(ValueError):
    """No configured broker answers; the message is one line naming the setting."""


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _connect_error(address: str, timeout_s: float) -> str | None:
    """None when a TCP connection to ``address`` opens, else why not."""
    host, port = _split(address)
    try:
        with socket.create_connection((host, port), timeout=max(timeout_s, 0.05)):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def check_reachable(
    settings: Settings,
    wait_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> list[str]:
    """The bootstrap addresses that accept a connection, trying again for up to ``wait_s``
    (a broker starting beside us); raises ``BrokerUnreachable`` when none does."""
    addresses = [a for a in settings.bootstrap_servers.split(",") if a]
    deadline = clock() + wait_s
    while True:
        errors = {a: _connect_error(a, min(2.0, max(deadline - clock(), 0.5))) for a in addresses}
        up = [a for a, err in errors.items() if err is None]
        if up or clock() >= deadline:
            break
        pause(min(0.5, max(deadline - clock(), 0.0)))
    if not up:
        why = "; ".join(f"{a}: {err}" for a, err in errors.items())
        raise BrokerUnreachable(
            f"LLMWATCH_BOOTSTRAP_SERVERS: no Kafka broker answers ({why}); start the broker "
            "or fix the address"
        )
    return up


def check_metadata(settings: Settings, timeout_s: float) -> int:
    """Brokers in the cluster's metadata, asked with the configured security settings."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    errors: list[str] = []

    def on_error(err: Any) -> None:
        errors.append(str(err.str()) if hasattr(err, "str") else str(err))

    conf: dict[str, Any] = {
        **kafka_client_config(settings),
        "logger": _RDKAFKA_LOG,
        "error_cb": on_error,
    }
    try:
        meta = AdminClient(conf).list_topics(timeout=max(timeout_s, 0.5))
    except KafkaException as exc:
        reason = errors[-1] if errors else str(exc.args[0].str() if exc.args else exc)
        raise BrokerUnreachable(
            f"LLMWATCH_BOOTSTRAP_SERVERS: {settings.bootstrap_servers} accepts connections "
            f"but no Kafka metadata came back within {timeout_s:g} s ({reason}); check "
            "LLMWATCH_SECURITY_PROTOCOL, the SASL/SSL settings and the port"
        ) from None
    return len(meta.brokers)


def check_brokers(settings: Settings, wait_s: float | None = None) -> None:
    """Both checks, within ``settings.connect_timeout_s`` (or ``wait_s``) each."""
    wait = settings.connect_timeout_s if wait_s is None else wait_s
    check_reachable(settings, wait)
    if settings.broker_api_version is None:
        # Brokers before 0.10 drop librdkafka's ApiVersions request: only the TCP check.
        check_metadata(settings, max(wait, 1.0))
