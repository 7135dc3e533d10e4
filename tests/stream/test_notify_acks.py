"""Acks and silences across replicas and restarts, through the real broker."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from confluent_kafka import Producer

from stream.alerting.silences import Ack
from tests.connectors.notify_fakes import FakePagerDuty, make_alert, resolved
from tests.connectors.notify_harness import (
    PD_KEY,
    config_for,
    pd_actions,
    publish,
    running,
    settings_for,
    until,
)


def _pd(url: str) -> list[dict[str, object]]:
    return [{"name": "pd", "type": "pagerduty", "api_url": f"{url}/v2/enqueue"}]


def test_an_ack_written_while_the_notifier_was_down_is_sent_at_start(
    embedded_broker: str, tmp_path: Path
) -> None:
    async def main() -> None:
        pd = FakePagerDuty(PD_KEY)
        async with pd.running() as url:
            settings = settings_for(embedded_broker, tmp_path)
            config = config_for(_pd(url), {"receiver": "pd"})
            live = make_alert(alert_id="a-live", fingerprint="fplive")
            old = make_alert(alert_id="a-old", fingerprint="fpold")
            publish(embedded_broker, settings.topic_alerts, [live, old])
            async with running(settings, config) as svc:
                await svc.settled(2)
            # Another replica took these acks while this one was down; one has expired.
            now = time.time()
            producer = Producer(
                {"bootstrap.servers": embedded_broker, "log.connection.close": False}
            )
            for ack in (
                Ack("fplive", "a-live", "alice", now, now + 3600, "mine"),
                Ack("fpold", "a-old", "bob", now - 7200, now - 3600, "stale"),
            ):
                producer.produce(
                    settings.topic_silences,
                    key=f"ack:{ack.fingerprint}".encode(),
                    value=json.dumps(ack.to_dict()).encode(),
                )
            assert producer.flush(10.0) == 0
            async with running(settings, config) as again:
                await until(lambda: len(pd.events) == 3, what="the acknowledge")
                _, acks = await again.get("/api/acks")
                assert [a["fingerprint"] for a in acks] == ["fplive"]
            got = pd_actions(pd.events)
            # Two partitions: the triggers' order between them is not defined.
            assert sorted(got[:2]) == [("trigger", "fplive"), ("trigger", "fpold")]
            assert got[2:] == [("acknowledge", "fplive")]

    asyncio.run(main())


def test_a_silence_never_strands_an_incident_that_was_already_paged(
    embedded_broker: str, tmp_path: Path
) -> None:
    async def main() -> None:
        pd = FakePagerDuty(PD_KEY)
        async with pd.running() as url:
            settings = settings_for(embedded_broker, tmp_path)
            config = config_for(_pd(url), {"receiver": "pd"})
            first = make_alert(alert_id="a-1", fingerprint="fpx")
            publish(embedded_broker, settings.topic_alerts, [first])
            async with running(settings, config) as svc:
                await svc.settled(1)
                body = {"matchers": ['model="llama-70b"'], "duration": "1h", "created_by": "ops"}
                assert (await svc.post("/api/silences", body))[0] == 201
                refire = make_alert(
                    alert_id="a-2", fingerprint="fpx", starts_at="2024-05-01T14:00:00Z"
                )
                publish(embedded_broker, settings.topic_alerts, [resolved(first), refire])
                await svc.settled(3)
                assert svc.metric("llmwatch_notify_silenced_total", {"receiver": "pd"}) == 1
            # The resolve closes the incident that was paged; the new episode stays quiet.
            assert [e["event_action"] for e in pd.events] == ["trigger", "resolve"]

    asyncio.run(main())
