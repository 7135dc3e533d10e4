"""The notifier's disk fills up for a while: pages wait, none is lost, none repeats.

A real ``llmwatch notify`` process reads alerts from the broker and pages a fake
PagerDuty over HTTP. Mid-run its file-size limit (RLIMIT_FSIZE) is set to 0 from
outside with ``prlimit(2)``: every write to a regular file now fails with EFBIG, as a
full disk fails with ENOSPC (Python ignores SIGXFSZ, so the write returns the error
instead of killing the process). The page already sent cannot be stored in the
delivery ledger, so its lane pauses and retries (ERROR log, metrics); the other pages
wait behind it. Then the limit is lifted, again from outside, the paused pages go
out, and the notifier is restarted on the same state directory and consumer group.
Expected: every alert group paged exactly once (0 lost, 0 duplicate triggers).
Runs on the real Kafka 0.9 broker (``make test-kafka09``) and on the embedded one.
"""

from __future__ import annotations

import asyncio
import json
import resource
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.connectors.notify_fakes import FakePagerDuty, make_alert
from tests.connectors.notify_harness import API_TOKEN, PD_KEY, group_of
from tests.integration.test_notify_ha import REPO, Replica, _until

BATCHES = ("before", "during", "after")  # the fault, and the restart after it
PER_BATCH = 3  # alert groups per batch, one alert each


class PipedReplica(Replica):
    """A replica whose output goes through a pipe: with RLIMIT_FSIZE at 0 a log *file*
    would refuse the notifier's own ERROR lines, a pipe does not."""

    def start(self) -> None:
        import subprocess

        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out = self.proc.stdout
        assert out is not None

        def drain() -> None:
            with self.log.open("ab") as fh:
                for line in out:
                    fh.write(line)
                    fh.flush()

        threading.Thread(target=drain, daemon=True).start()

    def set_fsize(self, soft: int) -> None:
        """The disk-full fault, set and lifted from outside the running process."""
        assert self.proc is not None
        hard = resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE)[1]
        resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, (soft, hard))

    def samples(self) -> dict[str, float]:
        """Summed samples of the metrics this scenario reads."""
        from prometheus_client.parser import text_string_to_metric_families

        _, text = self.get("/metrics")
        out: dict[str, float] = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                name = s.name
                if name == "llmwatch_notify_deliveries_total":
                    name = f"{name}:{s.labels['outcome']}"
                out[name] = out.get(name, 0.0) + s.value
        return out


def _publish(bootstrap: str, topic: str, extra: dict[str, str], batch: str) -> list[str]:
    from confluent_kafka import Producer

    from schemas.models import dump_json

    producer = Producer({"bootstrap.servers": bootstrap, **extra})
    fingerprints = []
    for i in range(PER_BATCH):
        name = f"diskfull.{batch}.{i}"
        a = make_alert(
            alert_id=f"a-{batch}-{i}",
            fingerprint=f"fp-{batch}-{i}",
            title=name,
            labels={"alertname": name, "instance": "node-1"},
        )
        producer.produce(topic, key=name.encode(), value=dump_json(a))
        fingerprints.append(a.fingerprint)
    assert producer.flush(20.0) == 0
    return fingerprints


def _triggers(pd: FakePagerDuty) -> dict[str, int]:
    """PagerDuty triggers per alert fingerprint (one alert per group)."""
    out: dict[str, int] = {}
    for e in pd.events:
        if e["event_action"] == "trigger":
            for fp in group_of(e):
                out[fp] = out.get(fp, 0) + 1
    return out


def run_scenario(
    bootstrap: str,
    work: Path,
    client: dict[str, str],
    create_topics: Callable[[list[str]], None],
    broker_api: str | None,
) -> dict[str, Any]:
    import os

    tag = str(time.time_ns())[-8:]
    topics = {
        "alerts": f"df.alerts.{tag}",
        "silences": f"df.silences.{tag}",
        "dead": f"df.dead.{tag}",
    }
    create_topics(list(topics.values()))

    async def main() -> dict[str, Any]:
        pd = FakePagerDuty(PD_KEY)
        async with pd.running() as pd_url:
            config = work / "notify.yaml"
            config.write_text(
                json.dumps(
                    {
                        "receivers": [
                            {"name": "pd", "type": "pagerduty", "api_url": f"{pd_url}/v2/enqueue"}
                        ],
                        "route": {
                            "receiver": "pd",
                            "group_by": ["alertname"],
                            "group_wait": "0s",
                            "group_interval": "1s",
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
                "LLMWATCH_NOTIFY_GROUP": f"df-notify-{tag}",
                "LLMWATCH_PAGERDUTY_ROUTING_KEY": PD_KEY,
                "LLMWATCH_API_TOKEN": API_TOKEN,
                "LLMWATCH_WEB_HOST": "127.0.0.1",
            }
            if broker_api is not None:
                env["LLMWATCH_BROKER_API_VERSION"] = broker_api
            # Both runs share one state directory (the ledger): the restart reads it.
            a = PipedReplica("a", env, config, work)
            b = PipedReplica("b", env, config, work)
            b.env["LLMWATCH_STATE_DIR"] = a.env["LLMWATCH_STATE_DIR"]
            both: list[Replica] = [a, b]
            for r in both:
                r.log.touch()  # a timeout shows both logs
            fps: dict[str, list[str]] = {}
            seen: dict[str, Any] = {}
            try:
                a.start()
                await _until(lambda: a.partitions(), "the notifier to own the partitions", both)
                fps["before"] = _publish(bootstrap, topics["alerts"], client, "before")
                await _until(
                    lambda: all(f in _triggers(pd) for f in fps["before"]), "first pages", both
                )
                # Recorded too (PagerDuty sees a page before the ledger does).
                await _until(
                    lambda: (
                        a.samples().get("llmwatch_notify_deliveries_total:sent") == PER_BATCH
                        and a.gauge("llmwatch_notify_in_flight") == 0
                    ),
                    "first pages recorded",
                    both,
                )
                # -- the disk fills up --------------------------------------------------
                a.set_fsize(0)
                fps["during"] = _publish(bootstrap, topics["alerts"], client, "during")
                # Two refused writes: the lane has waited and retried at least once.
                await _until(
                    lambda: a.samples().get("llmwatch_notify_ledger_write_failures_total", 0) >= 2,
                    "refused ledger writes",
                    both,
                )
                during = a.samples()
                seen["paused_while_full"] = during.get("llmwatch_notify_ledger_paused_receivers", 0)
                seen["paged_while_full"] = sum(1 for f in fps["during"] if f in _triggers(pd))
                seen["healthz_while_full"] = a.get("/healthz")[0]
                assert a.proc is not None and a.proc.poll() is None, "notifier died on EFBIG"
                # -- the disk has room again --------------------------------------------
                a.set_fsize(resource.RLIM_INFINITY)
                await _until(
                    lambda: all(f in _triggers(pd) for f in fps["during"]),
                    "the delayed pages",
                    both,
                )
                await _until(
                    lambda: (
                        a.gauge("llmwatch_notify_in_flight") == 0
                        and a.gauge("llmwatch_notify_ledger_paused_receivers") == 0
                    ),
                    "the lane to resume and drain",
                    both,
                )
                first = a.samples()
                a.stop()
                seen["exit_a"] = a.proc.returncode
                # -- restart on the same ledger and group --------------------------------
                b.start()
                await _until(lambda: b.partitions(), "the restarted notifier", both)
                fps["after"] = _publish(bootstrap, topics["alerts"], client, "after")
                await _until(
                    lambda: all(f in _triggers(pd) for f in fps["after"]), "last pages", both
                )
                # It finished all it read: a re-page of an earlier group would be out now.
                await _until(lambda: b.gauge("llmwatch_notify_in_flight") == 0, "idle", both)
                second = await _until(b.samples, "the restarted notifier's metrics", both)
                seen["log_a"] = a.log.read_text(errors="replace")
            finally:
                for r in both:
                    r.stop()
        assert pd.invalid == []
        triggers = _triggers(pd)
        every = [f for batch in BATCHES for f in fps[batch]]
        sent_key = "llmwatch_notify_deliveries_total:sent"
        retried_key = "llmwatch_notify_retries_total"
        return {
            **seen,
            "groups": len(every),
            "triggers_per_group": {f: triggers.get(f, 0) for f in every},
            "lost": sum(1 for f in every if triggers.get(f, 0) == 0),
            "duplicate": sum(n - 1 for n in triggers.values() if n > 1),
            "unexpected": sorted(set(triggers) - set(every)),
            "sent": first.get(sent_key, 0) + second.get(sent_key, 0),
            "retried": first.get(retried_key, 0) + second.get(retried_key, 0),
            "write_failures": first.get("llmwatch_notify_ledger_write_failures_total", 0),
            "write_failures_after_restart": second.get(
                "llmwatch_notify_ledger_write_failures_total", 0
            ),
        }

    out = asyncio.run(main())
    log_a = out.pop("log_a")
    print(json.dumps({"scenario": "notify_disk_full", **out}))
    assert out["lost"] == 0 and out["duplicate"] == 0 and out["unexpected"] == []
    assert out["triggers_per_group"] == dict.fromkeys(out["triggers_per_group"], 1)
    # The fault was real and seen: writes refused, counted, the lane paused, pages held.
    assert out["write_failures"] >= 2 and out["write_failures_after_restart"] == 0
    assert out["paused_while_full"] == 1
    # The first page went out and could not be recorded; the rest waited behind it.
    assert out["paged_while_full"] == 1
    assert out["healthz_while_full"] == 200  # waiting on the disk is not a crash
    assert "could not store delivery" in log_a and "lane resumed" in log_a
    assert out["sent"] == out["groups"]
    assert out["exit_a"] == 0
    return out


@pytest.mark.integration
def test_notifier_disk_full_embedded(embedded_broker: str, tmp_path: Path) -> None:
    from confluent_kafka import Producer

    def create(names: list[str]) -> None:
        producer = Producer({"bootstrap.servers": embedded_broker})
        for name in names:
            assert producer.list_topics(name, timeout=10.0).topics[name].partitions

    run_scenario(embedded_broker, tmp_path, {}, create, broker_api=None)


@pytest.mark.kafka09
def test_notifier_disk_full_kafka09(kafka09: Any, tmp_path: Path) -> None:
    def create(names: list[str]) -> None:
        kafka09.create_topics([n for n in names if "silences" not in n], partitions=4)
        kafka09.create_topics(
            [n for n in names if "silences" in n],
            partitions=4,
            configs={"cleanup.policy": "compact"},
        )

    client = {"api.version.request": "false", "broker.version.fallback": "0.9.0.1"}
    run_scenario(kafka09.bootstrap, tmp_path, client, create, broker_api="0.9.0.1")
