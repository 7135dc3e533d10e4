"""Two notifier replicas in one consumer group; one is SIGKILLed mid-delivery.

Both are real ``llmwatch notify`` processes. Replica A delivers to PagerDuty, and its
first Slack post hangs (a slow Slack); replica B joins, A is killed with SIGKILL. B
takes A's partitions, re-reads the alerts A never committed, finds A's PagerDuty
deliveries in the shared ledger (the compacted silences topic) and posts each group's
Slack message once. Expected: 0 lost, 0 duplicate Slack posts, PagerDuty one incident
per group (a repeated trigger merges by dedup_key). Runs on the real Kafka 0.9 broker
(``make test-kafka09``) and on the embedded one.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.connectors.notify_fakes import FakePagerDuty, FakeSlack, Reply, Seen, make_alert
from tests.connectors.notify_harness import API_TOKEN, PD_KEY, SLACK_TOKEN, group_of

REPO = Path(__file__).resolve().parents[2]
GROUPS = ("latency.ttft_p99", "error_rate.error", "gpu.xid")


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Replica:
    def __init__(self, name: str, env: dict[str, str], config: Path, work: Path) -> None:
        self.name = name
        self.port = _port()
        self.log = work / f"{name}.log"
        self.env = {
            **env,
            "LLMWATCH_NOTIFY_WEB_PORT": str(self.port),
            "LLMWATCH_STATE_DIR": str(work / f"state-{name}"),
        }
        self.argv = [sys.executable, "-m", "stream.cli", "notify", "--config", str(config)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )

    def get(self, path: str) -> tuple[int, str]:
        try:
            # /metrics asks the broker for lags: seconds on a busy 0.9 broker.
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=20) as r:
                return r.status, r.read().decode()
        except OSError:
            return 0, ""

    def partitions(self) -> list[int]:
        status, body = self.get("/healthz")
        return json.loads(body)["partitions"] if status == 200 else []

    def deliveries(self) -> dict[str, float]:
        _, text = self.get("/metrics")
        out: dict[str, float] = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == "llmwatch_notify_deliveries_total":
                    out[s.labels["outcome"]] = out.get(s.labels["outcome"], 0) + s.value
                if s.name == "llmwatch_notify_retries_total":
                    out["retried"] = out.get("retried", 0) + s.value
        return out

    def gauge(self, name: str) -> float | None:
        _, text = self.get("/metrics")
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == name:
                    return s.value
        return None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


async def _until(
    check: Callable[[], Any], what: str, replicas: list[Replica], t: float = 60
) -> Any:
    """Poll (the fakes run on this loop, the replicas are processes) up to ``t`` s."""
    deadline = time.monotonic() + t
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {r.name}\n{r.log.read_text()[-3000:]}" for r in replicas)
            raise AssertionError(f"timed out waiting for {what}\n{logs}")
        await asyncio.sleep(0.1)


def _publish(bootstrap: str, topic: str, extra: dict[str, str]) -> list[Any]:
    """Two alerts per group, keyed as the worker keys them (one key: one partition)."""
    from confluent_kafka import Producer

    from schemas.models import dump_json
    from stream.alerting.labels import topic_key

    producer = Producer({"bootstrap.servers": bootstrap, **extra})
    alerts = []
    for i, name in enumerate(GROUPS):
        for j in range(2):
            a = make_alert(
                alert_id=f"a-{i}-{j}",
                fingerprint=f"fp{i}{j}",
                title=name,
                labels={"alertname": name, "instance": f"node-{j}"},
            )
            producer.produce(topic, key=topic_key(a), value=dump_json(a))
            alerts.append(a)
    assert producer.flush(20.0) == 0
    return alerts


def run_scenario(
    bootstrap: str,
    work: Path,
    client: dict[str, str],
    create_topics: Callable[[list[str]], None],
    session_ms: int,
    broker_api: str | None,
) -> dict[str, Any]:
    tag = str(time.time_ns())[-8:]
    topics = {
        "alerts": f"ha.alerts.{tag}",
        "silences": f"ha.silences.{tag}",
        "dead": f"ha.dead.{tag}",
    }
    create_topics(list(topics.values()))

    async def main() -> dict[str, Any]:
        pd = FakePagerDuty(PD_KEY)
        slack = FakeSlack(SLACK_TOKEN, "/services/unused")
        first_post: list[Seen] = []

        def slow_first(seen: Seen) -> Reply | None:
            if seen.path == "/api/chat.postMessage" and not first_post:
                first_post.append(seen)
                return Reply(action="hang")  # A's first Slack post never returns
            return None

        slack.rule = slow_first
        async with pd.running() as pd_url, slack.running() as slack_url:
            config = work / "notify.yaml"
            config.write_text(
                json.dumps(
                    {
                        "receivers": [
                            {"name": "pd", "type": "pagerduty", "api_url": f"{pd_url}/v2/enqueue"},
                            {
                                "name": "slack",
                                "type": "slack_bot",
                                "channel": "C0HA",
                                "api_base_url": f"{slack_url}/api/",
                                "timeout_s": 120,
                            },
                        ],
                        "route": {
                            "receiver": "pd",
                            "group_by": ["alertname"],
                            "group_wait": "0s",
                            "group_interval": "1s",
                            "routes": [
                                {"receiver": "pd", "continue": True},
                                {"receiver": "slack"},
                            ],
                        },
                        "consumer_properties": {
                            "session.timeout.ms": str(session_ms),
                            "heartbeat.interval.ms": str(session_ms // 10),
                        },
                    }
                )
            )
            env = {
                **os.environ,
                "LLMWATCH_BOOTSTRAP_SERVERS": bootstrap,
                "LLMWATCH_TOPIC_ALERTS": topics["alerts"],
                "LLMWATCH_TOPIC_SILENCES": topics["silences"],
                "LLMWATCH_TOPIC_DEADLETTER": topics["dead"],
                "LLMWATCH_NOTIFY_GROUP": f"ha-notify-{tag}",
                "LLMWATCH_PAGERDUTY_ROUTING_KEY": PD_KEY,
                "LLMWATCH_SLACK_BOT_TOKEN": SLACK_TOKEN,
                "LLMWATCH_API_TOKEN": API_TOKEN,
                "LLMWATCH_WEB_HOST": "127.0.0.1",
            }
            if broker_api is not None:
                env["LLMWATCH_BROKER_API_VERSION"] = broker_api
            a = Replica("a", env, config, work)
            b = Replica("b", env, config, work)
            both = [a, b]
            try:
                a.start()
                await _until(lambda: a.partitions(), "replica A to own the partitions", both)
                alerts = _publish(bootstrap, topics["alerts"], client)
                await _until(lambda: len(pd.events) >= len(GROUPS), "A's PagerDuty pages", both)
                await _until(lambda: first_post, "A's first Slack post (which hangs)", both)
                b.start()
                await _until(lambda: b.partitions(), "replica B to join", both)
                a.kill()  # SIGKILL: no commit, no goodbye, one Slack post in the air
                await _until(
                    lambda: len(slack.messages) >= len(GROUPS), "B's Slack messages", both, 120
                )
                # B finished everything it read (a duplicate would have been sent by now).
                await _until(lambda: b.gauge("llmwatch_notify_in_flight") == 0, "B idle", both)
                counts = await _until(b.deliveries, "B's delivery counts", both)
            finally:
                for r in both:
                    r.stop()
        assert pd.invalid == [] and slack.invalid == []
        # Slack text breaks mrkdwn markers with zero-width spaces: match without them.
        texts = [m["text"].replace("\u200b", "") for m in slack.messages.values()]
        per_group = {g: sum(1 for t in texts if g in t) for g in GROUPS}
        triggers: dict[str, int] = {}
        paged: set[str] = set()
        for e in pd.events:
            if e["event_action"] == "trigger":
                triggers[e["dedup_key"]] = triggers.get(e["dedup_key"], 0) + 1
                paged.update(group_of(e))
        return {
            "slack_messages_per_group": per_group,
            "pd_triggers_per_incident": triggers,
            "lost": len({x.fingerprint for x in alerts} - paged),
            "duplicate_slack_posts": sum(n - 1 for n in per_group.values() if n > 1),
            "sent": counts.get("sent", 0),
            "retried": counts.get("retried", 0),
            "deduplicated": counts.get("deduplicated", 0),
        }

    out = asyncio.run(main())
    print(json.dumps({"scenario": "ha_sigkill_mid_delivery", **out}))
    assert out["lost"] == 0 and out["duplicate_slack_posts"] == 0
    assert out["slack_messages_per_group"] == dict.fromkeys(GROUPS, 1)
    assert len(out["pd_triggers_per_incident"]) == len(GROUPS)  # one incident per group
    assert out["deduplicated"] >= 1  # B found A's PagerDuty deliveries in the shared ledger
    return out


@pytest.mark.integration
def test_two_replicas_sigkill_mid_delivery_embedded(embedded_broker: str, tmp_path: Path) -> None:
    from confluent_kafka import Producer

    def create(names: list[str]) -> None:
        producer = Producer({"bootstrap.servers": embedded_broker})
        for name in names:
            assert producer.list_topics(name, timeout=10.0).topics[name].partitions

    run_scenario(embedded_broker, tmp_path, {}, create, session_ms=3000, broker_api=None)


@pytest.mark.kafka09
def test_two_replicas_sigkill_mid_delivery_kafka09(kafka09: Any, tmp_path: Path) -> None:
    def create(names: list[str]) -> None:
        kafka09.create_topics([n for n in names if "silences" not in n], partitions=4)
        kafka09.create_topics(
            [n for n in names if "silences" in n],
            partitions=4,
            configs={"cleanup.policy": "compact"},
        )

    client = {"api.version.request": "false", "broker.version.fallback": "0.9.0.1"}
    run_scenario(kafka09.bootstrap, tmp_path, client, create, session_ms=6000, broker_api="0.9.0.1")
