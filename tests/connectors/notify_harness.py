"""Running the notifier worker in a test: settings, topics, publishing, polling, the API.

Everything is real: the embedded broker, the notifier's consumer group and
compacted silences topic, its aiohttp API, and the fake receivers' HTTP servers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from connectors.notify import Clock
from schemas.models import Alert, dump_json
from stream.notify import NotifierService, NotifyConfig, parse_config, serve
from stream.settings import Settings

PD_KEY = "PDKEY0notify0e2e0secret0000000AB"
API_TOKEN = "api-token-0e2e-secret-7f3c9a"
SLACK_TOKEN = "xoxb-0000-e2e-slack-bot-token-secret"
WEBHOOK_PATH = "/hooks/e2e-webhook-path-secret-1234567"
WEBHOOK_SECRET = "hmac-e2e-webhook-signing-secret"
SLACK_HOOK_PATH = "/services/T000/B000/slack-e2e-hook-secret-abcdef"


# librdkafka's mock broker ignores LeaveGroup: a restarted member waits for the old one's
# session to time out, so tests use a short one (the mock's own rebalance delay is 3 s).
MOCK_CONSUMER = {"session.timeout.ms": "3000", "heartbeat.interval.ms": "300"}


def settings_for(bootstrap: str, state_dir: Path, **overrides: Any) -> Settings:
    """Fresh topics and group per test: the session broker is shared."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topic_alerts": f"test.notify.alerts.{tag}",
        "topic_deadletter": f"test.notify.dead.{tag}",
        "topic_silences": f"test.notify.silences.{tag}",
        "notify_group": f"test-notify-{tag}",
        "state_dir": state_dir,
        "pagerduty_routing_key": SecretStr(PD_KEY),
        "api_token": SecretStr(API_TOKEN),
    }
    values.update(overrides)
    return Settings(**values)


def config_for(
    receivers: list[dict[str, Any]], route: dict[str, Any], **extra: Any
) -> NotifyConfig:
    """Unless the route says otherwise: one group per alert (``group_by: [...]``), sent
    and updated without waiting, so a test about delivery is not one about group timers."""
    route = {"group_by": ["..."], "group_wait": 0, "group_interval": 0, **route}
    return parse_config({"receivers": receivers, "route": route, **extra})


def group_of(pd_event: dict[str, Any]) -> list[str]:
    """Fingerprints of the alerts a PagerDuty trigger carries."""
    return [a["fingerprint"] for a in pd_event["payload"]["custom_details"]["alerts"]]


def pd_actions(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(event_action, fingerprint) per PagerDuty event, for groups of one alert: the
    dedup_key is the group key, so acks and resolves are named by their trigger's alert."""
    by_key: dict[str, str] = {}
    out = []
    for event in events:
        if event["event_action"] == "trigger":
            (by_key[event["dedup_key"]],) = group_of(event)
        out.append((event["event_action"], by_key.get(event["dedup_key"], event["dedup_key"])))
    return out


def publish(bootstrap: str, topic: str, alerts: Iterable[Alert | bytes]) -> int:
    """Write alerts (keyed by fingerprint, as the worker does); returns how many."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "log.connection.close": False})
    n = 0
    for alert in alerts:
        if isinstance(alert, Alert):
            # A real fingerprint is a hash of the labels; test alerts share labels, so each
            # gets an ``instance`` label of its own, as distinct real alerts would differ.
            labels = {"instance": alert.fingerprint, **alert.labels}
            alert = alert.model_copy(update={"labels": labels})
            producer.produce(topic, key=alert.fingerprint.encode(), value=dump_json(alert))
        else:
            producer.produce(topic, key=b"raw", value=alert)
        n += 1
    assert producer.flush(10.0) == 0, "the broker did not take the test's alerts"
    return n


def create_topic(bootstrap: str, topic: str) -> None:
    """An empty topic (the embedded broker creates one on a metadata request)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "log.connection.close": False})
    meta = producer.list_topics(topic, timeout=10.0).topics[topic]
    assert meta.error is None and meta.partitions, f"topic {topic} not created"


def committed(bootstrap: str, topic: str, group: str) -> dict[int, int]:
    """The group's committed offsets per partition (partitions without one left out)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = consumer.list_topics(topic, timeout=5.0).topics[topic].partitions
        got = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=5.0)
        return {tp.partition: tp.offset for tp in got if tp.offset >= 0}
    finally:
        consumer.close()


async def until(
    predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true; fail after ``timeout_s`` (a bound, not a timing)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}{_state(predicate)}")
        await asyncio.sleep(0.02)


@dataclass
class Running:
    service: NotifierService
    url: str
    http: aiohttp.ClientSession
    auth: dict[str, str] = field(default_factory=lambda: {"Authorization": f"Bearer {API_TOKEN}"})

    def deliveries(self, receiver: str, outcome: str) -> float:
        value = self.service.metrics.registry.get_sample_value(
            "llmwatch_notify_deliveries_total", {"receiver": receiver, "outcome": outcome}
        )
        return value or 0.0

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.service.metrics.registry.get_sample_value(name, labels or {}) or 0.0

    def in_flight(self) -> int:
        assert self.service.consumer is not None
        with self.service.consumer.lock:
            return self.service.consumer.book.in_flight()

    def consumed(self) -> int:
        return int(self.metric("llmwatch_notify_alerts_in_total"))

    async def settled(self, n_alerts: int, timeout_s: float = 20.0) -> None:
        """All ``n_alerts`` consumed and finished by every receiver."""
        await until(
            lambda: self.consumed() >= n_alerts and self.in_flight() == 0,
            timeout_s,
            f"{n_alerts} alerts consumed and finished",
        )

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.url}{path}") as resp:
            return resp.status, await resp.json(content_type=None)

    async def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        hdrs = self.auth if headers is None else headers
        async with self.http.post(f"{self.url}{path}", json=body, headers=hdrs) as resp:
            return resp.status, await resp.json(content_type=None)

    async def delete(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        hdrs = self.auth if headers is None else headers
        async with self.http.delete(f"{self.url}{path}", headers=hdrs) as resp:
            return resp.status, await resp.json(content_type=None)


@asynccontextmanager
async def running(
    settings: Settings, config: NotifyConfig, clock: Clock | None = None
) -> AsyncIterator[Running]:
    service = NotifierService(settings, config, clock=clock, consumer_config=MOCK_CONSUMER)
    await service.start()
    runner, port = await serve(service, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            yield Running(service, f"http://127.0.0.1:{port}", http)
    finally:
        await runner.cleanup()
        await service.stop()


def _state(predicate: Callable[[], bool]) -> str:
    # The closure's objects say what the predicate saw last (helps a failure report).
    cells = getattr(predicate, "__closure__", None) or ()
    for cell in cells:
        obj = cell.cell_contents
        if isinstance(obj, Running):
            return f" (consumed {obj.consumed()}, in flight {obj.in_flight()})"
    return ""
