"""The notifier worker end to end: embedded broker -> notifier -> fake PagerDuty/Slack/webhook.

Each scenario prints its delivery counts (sent, retried, deduplicated,
dead-lettered, lost) as one JSON line, for the issue's report.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.connectors.notify_fakes import (
    FakeClock,
    FakePagerDuty,
    FakeSlack,
    FakeWebhook,
    Reply,
    SteppedClock,
    make_alert,
    resolved,
)
from tests.connectors.notify_harness import (
    PD_KEY,
    SLACK_TOKEN,
    WEBHOOK_PATH,
    committed,
    config_for,
    create_topic,
    group_of,
    pd_actions,
    publish,
    running,
    settings_for,
    until,
)

pytestmark = pytest.mark.integration


def _alerts(n: int) -> list[Any]:
    return [
        make_alert(alert_id=f"a-{i}", fingerprint=f"fp{i:04d}", labels={"model": f"m{i % 3}"})
        for i in range(n)
    ]


def _report(scenario: str, **counts: Any) -> None:
    print(json.dumps({"scenario": scenario, **counts}))


def _pd_receivers(pd_url: str, slack_url: str | None = None) -> list[dict[str, Any]]:
    receivers: list[dict[str, Any]] = [
        {"name": "pd", "type": "pagerduty", "api_url": f"{pd_url}/v2/enqueue", "timeout_s": 2}
    ]
    if slack_url is not None:
        receivers.append(
            {
                "name": "slack",
                "type": "slack_bot",
                "api_base_url": f"{slack_url}/api/",
                "channel": "C0ALERTS",
                "timeout_s": 2,
            }
        )
    return receivers


def _fanout(*names: str) -> dict[str, Any]:
    return {"receiver": names[0], "routes": [{"receiver": n, "continue": True} for n in names]}


async def _then_resolved(
    svc: Any, broker: str, settings: Any, alerts: list[Any], n: int
) -> list[Any]:
    """Once ``alerts`` are settled, publish the resolves of the first ``n`` and wait for
    them too (a resolve read in the same look as its firing would be transient). Returns
    every event published."""
    await svc.settled(len(alerts))
    events = alerts + [resolved(a) for a in alerts[:n]]
    publish(broker, settings.topic_alerts, events[len(alerts) :])
    await svc.settled(len(events))
    return events


def _triggers(pd: FakePagerDuty) -> dict[str, int]:
    """Triggers per alert fingerprint (these tests' groups hold one alert each)."""
    out: dict[str, int] = {}
    for event in pd.events:
        if event["event_action"] == "trigger":
            (fp,) = group_of(event)
            out[fp] = out.get(fp, 0) + 1
    return out


def test_alerts_are_paged_once_and_a_replay_pages_nobody(
    embedded_broker: str, tmp_path: Path
) -> None:
    async def main() -> None:
        # Slack's token bucket (1/s, burst 3) waits on this clock, not on the wall.
        clock = FakeClock()
        pd = FakePagerDuty(PD_KEY, clock)
        slack = FakeSlack(SLACK_TOKEN, "/services/unused", clock)
        async with pd.running() as pd_url, slack.running() as slack_url:
            settings = settings_for(
                embedded_broker, tmp_path / "state", slack_bot_token=SecretStr(SLACK_TOKEN)
            )
            config = config_for(_pd_receivers(pd_url, slack_url), _fanout("pd", "slack"))
            alerts = _alerts(8)
            publish(embedded_broker, settings.topic_alerts, alerts)
            async with running(settings, config, clock) as first:
                events = await _then_resolved(first, embedded_broker, settings, alerts, 3)
                sent = first.deliveries("pd", "sent") + first.deliveries("slack", "sent")
            assert pd.invalid == [] and slack.invalid == []
            assert _triggers(pd) == {a.fingerprint: 1 for a in alerts}
            resolves = [fp for action, fp in pd_actions(pd.events) if action == "resolve"]
            assert sorted(resolves) == [a.fingerprint for a in alerts[:3]]
            # Slack: one message per alert; the resolves updated them in place.
            assert len(slack.messages) == 8
            # Rate limited: past the burst of 3, at most one Slack delivery per second (a
            # resolve is two calls: the update in place and its thread reply).
            span = slack.requests[-1].at - slack.requests[0].at
            assert len(slack.requests) == 8 + 2 * 3 and span >= len(events) - 3 - 0.01
            total = sum(
                c
                for c in committed(
                    embedded_broker, settings.topic_alerts, settings.notify_group
                ).values()
            )
            assert total == len(events)
            # A second notifier in a new group starts from the alerts still open (5), not
            # the history (11 events): the ledger says those were sent; nothing is re-sent.
            requests_before = len(pd.requests) + len(slack.requests)
            again = settings.model_copy(update={"notify_group": settings.notify_group + "-2"})
            async with running(again, config, clock) as second:
                await second.settled(len(events))
                dedup = second.deliveries("pd", "deduplicated") + second.deliveries(
                    "slack", "deduplicated"
                )
                resent = second.deliveries("pd", "sent") + second.deliveries("slack", "sent")
                skipped = second.service.catchup.skipped
            assert len(pd.requests) + len(slack.requests) == requests_before
            assert resent == 0 and skipped == 6  # 3 resolves + the 3 firings they closed
        _report("paged_once", sent=sent, retried=0, deduplicated=dedup, dead_lettered=0, lost=0)

    asyncio.run(main())


@pytest.mark.parametrize("failure", ["hang", "http_500"])
def test_restart_mid_delivery_loses_nothing_and_pages_once(
    embedded_broker: str, tmp_path: Path, failure: str
) -> None:
    async def main() -> None:
        pd = FakePagerDuty(PD_KEY)
        if failure == "hang":
            pd.plan(Reply(action="hang"))
        else:
            pd.rule = lambda seen: Reply(status=500, body="upstream down")
        async with pd.running() as pd_url:
            settings = settings_for(embedded_broker, tmp_path / "state")
            config = config_for(_pd_receivers(pd_url), {"receiver": "pd"})
            alerts = _alerts(6)
            publish(embedded_broker, settings.topic_alerts, alerts)
            # The stepped clock never moves: a failed attempt waits for a retry forever.
            async with running(settings, config, SteppedClock()) as first:
                await until(lambda: first.consumed() == 6 and len(pd.requests) >= 1)
                assert first.in_flight() == 6
            failed_requests = len(pd.requests)
            assert pd.events == []
            nothing = committed(embedded_broker, settings.topic_alerts, settings.notify_group)
            assert sum(nothing.values()) == 0
            pd.rule = None
            async with running(settings, config) as second:
                await second.settled(6)
                sent = second.deliveries("pd", "sent")
            assert pd.invalid == []
            assert _triggers(pd) == {a.fingerprint: 1 for a in alerts}
            lost = len(alerts) - len(_triggers(pd))
            total = committed(embedded_broker, settings.topic_alerts, settings.notify_group)
            assert sum(total.values()) == 6
        _report(
            f"restart_mid_delivery_{failure}",
            sent=sent,
            retried=failed_requests,
            deduplicated=0,
            dead_lettered=0,
            lost=lost,
        )

    asyncio.run(main())


def test_one_receiver_down_ten_minutes_while_the_other_keeps_delivering(
    embedded_broker: str, tmp_path: Path
) -> None:
    async def main() -> None:
        clock = SteppedClock()
        outage_ends = clock.t + 600.0
        pd = FakePagerDuty(PD_KEY, clock)
        hook = FakeWebhook(clock)
        hook.rule = lambda seen: Reply(status=503) if clock.t < outage_ends else None
        async with pd.running() as pd_url, hook.running() as hook_url:
            settings = settings_for(
                embedded_broker,
                tmp_path / "state",
                webhook_url=SecretStr(f"{hook_url}{WEBHOOK_PATH}"),
            )
            receivers = [*_pd_receivers(pd_url), {"name": "hook", "type": "webhook"}]
            config = config_for(receivers, _fanout("pd", "hook"))
            alerts = _alerts(12)
            publish(embedded_broker, settings.topic_alerts, alerts)
            async with running(settings, config, clock) as svc:
                await until(lambda: len(pd.events) == 12, what="PagerDuty to get all 12")
                ok = [s for s in hook.requests if s.at >= outage_ends]
                assert ok == [] and svc.in_flight() == 12
                early = committed(embedded_broker, settings.topic_alerts, settings.notify_group)
                assert sum(early.values()) == 0
                for _ in range(2000):
                    if svc.in_flight() == 0:
                        break
                    await until(
                        lambda: clock.sleepers > 0 or svc.in_flight() == 0, what="a lane to wait"
                    )
                    clock.advance(15.0)
                    if abs(clock.t - outage_ends + 300.0) < 15.0:
                        await svc.service.refresh_metrics()
                        age = svc.metric("llmwatch_notify_oldest_undelivered_seconds")
                        assert age >= 285.0
                await svc.settled(12)
                retried = svc.metric("llmwatch_notify_retries_total", {"receiver": "hook"})
                counts = {
                    o: svc.deliveries("pd", o) + svc.deliveries("hook", o)
                    for o in ("sent", "deduplicated", "dead_lettered")
                }
            assert clock.t >= outage_ends
            delivered = [
                s.body["alerts"][0]["fingerprint"] for s in hook.requests if s.at >= outage_ends
            ]
            assert sorted(delivered) == sorted(a.fingerprint for a in alerts)
            assert _triggers(pd) == {a.fingerprint: 1 for a in alerts}
            assert counts["dead_lettered"] == 0 and retried > 0
            total = committed(embedded_broker, settings.topic_alerts, settings.notify_group)
            assert sum(total.values()) == 12
        _report(
            "receiver_outage_10min",
            sent=counts["sent"],
            retried=retried,
            deduplicated=counts["deduplicated"],
            dead_lettered=0,
            lost=12 - len(set(delivered)),
            simulated_outage_s=600,
        )

    asyncio.run(main())


def test_in_flight_window_pauses_consumption_and_bounds_memory(
    embedded_broker: str, tmp_path: Path
) -> None:
    async def main() -> None:
        clock = SteppedClock()
        pd = FakePagerDuty(PD_KEY, clock)
        pd.rule = lambda seen: Reply(status=500)
        async with pd.running() as pd_url:
            settings = settings_for(embedded_broker, tmp_path / "state")
            config = config_for(_pd_receivers(pd_url), {"receiver": "pd"}, max_in_flight=4)
            create_topic(embedded_broker, settings.topic_alerts)
            async with running(settings, config, clock) as svc:
                # Published once the notifier holds its partitions: live alerts, not a new
                # group's history (which is folded to the open alerts first).
                consumer = svc.service.consumer
                assert consumer is not None
                await until(lambda: bool(consumer.assigned), what="partitions assigned")
                publish(embedded_broker, settings.topic_alerts, _alerts(15))
                await until(lambda: svc.metric("llmwatch_notify_paused") == 1, what="pause")
                peak = svc.in_flight()
                assert peak == 4 and svc.consumed() == 4
                pd.rule = None
                seen_max = 0
                for _ in range(500):
                    seen_max = max(seen_max, svc.in_flight())
                    if svc.consumed() == 15 and svc.in_flight() == 0:
                        break
                    await asyncio.sleep(0.01)
                    clock.advance(5.0)
                await svc.settled(15)
                assert seen_max <= 4
            assert _triggers(pd) == {f"fp{i:04d}": 1 for i in range(15)}

    asyncio.run(main())


def test_silence_via_api_suppresses_delivery_and_survives_a_restart(
    embedded_broker: str, tmp_path: Path
) -> None:
    async def main() -> None:
        pd = FakePagerDuty(PD_KEY)
        async with pd.running() as pd_url:
            settings = settings_for(embedded_broker, tmp_path / "state")
            config = config_for(_pd_receivers(pd_url), {"receiver": "pd"})
            loud = make_alert(alert_id="a-loud", fingerprint="fploud", labels={"model": "m2"})
            quiet = make_alert(alert_id="a-q1", fingerprint="fpquiet1", labels={"model": "m1"})
            async with running(settings, config) as svc:
                status, sil = await svc.post(
                    "/api/silences",
                    {
                        "matchers": ['model="m1"'],
                        "duration": "2h",
                        "created_by": "oncall",
                        "comment": "maintenance",
                    },
                )
                assert status == 201, sil
                publish(embedded_broker, settings.topic_alerts, [loud, quiet])
                await svc.settled(2)
                _, alerts = await svc.get("/api/alerts")
                publish(embedded_broker, settings.topic_alerts, [resolved(quiet)])
                await svc.settled(3)
                # Held once; its resolve is not news to anyone (it was never paged).
                assert svc.metric("llmwatch_notify_silenced_total", {"receiver": "pd"}) == 1
            assert [fp for _, fp in pd_actions(pd.events)] == ["fploud"]
            # A fresh instance reads the silence back from the compacted topic.
            quiet2 = make_alert(alert_id="a-q2", fingerprint="fpquiet2", labels={"model": "m1"})
            async with running(settings, config) as again:
                status, listed = await again.get("/api/silences")
                assert status == 200 and [s["id"] for s in listed] == [sil["id"]]
                assert listed[0]["state"] == "active" and listed[0]["created_by"] == "oncall"
                publish(embedded_broker, settings.topic_alerts, [quiet2])
                await again.settled(1)
                silenced = again.metric("llmwatch_notify_silenced_total", {"receiver": "pd"})
                assert silenced == 1 and len(pd.events) == 1
                status, ended = await again.delete(f"/api/silences/{sil['id']}")
                assert status == 200 and ended["ends_at"] <= ended["starts_at"] + 7200
                quiet3 = make_alert(alert_id="a-q3", fingerprint="fpquiet3", labels={"model": "m1"})
                publish(embedded_broker, settings.topic_alerts, [quiet3])
                await again.settled(2)
                status, listed = await again.get("/api/silences")
                assert listed == []
            # Once the silence ends, quiet2 (still firing) is news at its group's next look,
            # as in Alertmanager; quiet3 never was silenced.
            got = [fp for _, fp in pd_actions(pd.events)]
            assert got[0] == "fploud" and sorted(got[1:]) == ["fpquiet2", "fpquiet3"]
        assert {a["alert"]["fingerprint"]: a["silenced_by"] for a in alerts} == {
            "fploud": None,
            "fpquiet1": sil["id"],
        }
        _report("silenced", sent=2, retried=0, deduplicated=0, dead_lettered=0, lost=0, silenced=3)

    asyncio.run(main())


def test_ack_sends_pagerduty_acknowledge_and_updates_the_slack_message(
    embedded_broker: str, tmp_path: Path
) -> None:
    async def main() -> None:
        pd = FakePagerDuty(PD_KEY)
        slack = FakeSlack(SLACK_TOKEN, "/services/unused")
        async with pd.running() as pd_url, slack.running() as slack_url:
            settings = settings_for(
                embedded_broker, tmp_path / "state", slack_bot_token=SecretStr(SLACK_TOKEN)
            )
            config = config_for(_pd_receivers(pd_url, slack_url), _fanout("pd", "slack"))
            alert = make_alert(alert_id="a-ack", fingerprint="fpack")
            publish(embedded_broker, settings.topic_alerts, [alert])
            async with running(settings, config) as svc:
                await svc.settled(1)
                status, ack = await svc.post(
                    "/api/acks",
                    {"fingerprint": "fpack", "by": "alice", "comment": "on it", "expires_in": "2h"},
                )
                assert status == 201 and ack["alert_id"] == "a-ack", ack
                await until(lambda: len(pd.events) == 2, what="the acknowledge")
                await until(lambda: len(slack.requests) == 3, what="the Slack update")
                _, acks = await svc.get("/api/acks")
                assert [a["by"] for a in acks] == ["alice"]
                _, active = await svc.get("/api/alerts")
                assert active[0]["acknowledged"]["comment"] == "on it"
            assert pd_actions(pd.events) == [("trigger", "fpack"), ("acknowledge", "fpack")]
            assert pd.invalid == [] and slack.invalid == []
            (message,) = slack.messages.values()
            assert "ACKNOWLEDGED" in message["text"]
            assert slack.requests[1].path == "/api/chat.update"
            assert "acknowledged by alice" in slack.thread_replies[0]["text"]
            # A restart re-reads the ack from the topic but acknowledges nothing twice.
            async with running(settings, config) as again:
                _, acks = await again.get("/api/acks")
                assert [a["fingerprint"] for a in acks] == ["fpack"]
                publish(embedded_broker, settings.topic_alerts, [resolved(alert)])
                await again.settled(1)
                dedup = again.deliveries("pd", "deduplicated")
            assert [e["event_action"] for e in pd.events] == ["trigger", "acknowledge", "resolve"]
            assert dedup == 1  # the ack, re-read at start, found the ledger already had it
            sent = len(pd.events) + len(slack.requests)
        _report("acknowledged", sent=sent, retried=0, deduplicated=dedup, dead_lettered=0, lost=0)

    asyncio.run(main())


def test_a_cause_within_group_wait_holds_its_symptoms_end_to_end(
    embedded_broker: str, tmp_path: Path
) -> None:
    """The demo's XID case through the real notifier: three error_rate symptoms on a host,
    then the GPU alert of that host; after group_wait one page, for the GPU."""

    async def main() -> None:
        clock = SteppedClock()
        pd = FakePagerDuty(PD_KEY, clock)
        async with pd.running() as pd_url:
            settings = settings_for(embedded_broker, tmp_path / "state")
            route = {"receiver": "pd", "group_by": ["alertname"], "group_wait": "30s"}
            config = config_for(_pd_receivers(pd_url), route)
            symptoms = [
                make_alert(
                    alert_id=f"e{i}",
                    fingerprint=f"fperr{i}",
                    detector="error_rate",
                    title="error_rate.error",
                    labels={"alertname": "error_rate.error", "host": "h2", "gateway": f"g{i}"},
                )
                for i in range(3)
            ]
            cause = make_alert(
                alert_id="x1",
                fingerprint="fpxid",
                detector="gpu_health",
                title="gpu.xid",
                labels={"alertname": "gpu.xid", "host": "h2", "gpu_uuid": "GPU-1"},
            )
            async with running(settings, config, clock) as svc:
                publish(embedded_broker, settings.topic_alerts, symptoms)
                await until(lambda: svc.consumed() == 3, what="the symptoms")
                clock.advance(10.0)  # the GPU alert comes 10 s later, inside group_wait
                publish(embedded_broker, settings.topic_alerts, [cause])
                await until(lambda: svc.consumed() == 4, what="the cause")
                clock.advance(21.0)  # the symptoms' group is due: held, nothing sent
                await until(
                    lambda: (
                        svc.metric(
                            "llmwatch_notify_held_total", {"receiver": "pd", "reason": "inhibited"}
                        )
                        == 3
                    ),
                    what="the symptoms held",
                )
                assert pd.events == []
                clock.advance(10.0)  # the cause's group is due
                await until(lambda: svc.in_flight() == 0, what="both groups flushed")
                held = svc.metric(
                    "llmwatch_notify_held_total", {"receiver": "pd", "reason": "inhibited"}
                )
            assert [group_of(e) for e in pd.events] == [["fpxid"]]
            assert held == 3
        _report("cause_within_group_wait", sent=1, held_by_inhibition=3, symptom_pages=0)

    asyncio.run(main())


def test_a_receiver_without_send_resolved_gets_no_resolves_end_to_end(
    embedded_broker: str, tmp_path: Path
) -> None:
    async def main() -> None:
        clock = FakeClock()
        pd = FakePagerDuty(PD_KEY, clock)
        hook = FakeWebhook(clock)
        async with pd.running() as pd_url, hook.running() as hook_url:
            settings = settings_for(
                embedded_broker,
                tmp_path / "state",
                webhook_url=SecretStr(f"{hook_url}{WEBHOOK_PATH}"),
            )
            hook_spec = {"name": "hook", "type": "webhook", "send_resolved": False}
            config = config_for([*_pd_receivers(pd_url), hook_spec], _fanout("pd", "hook"))
            alerts = _alerts(4)
            publish(embedded_broker, settings.topic_alerts, alerts)
            async with running(settings, config, clock) as svc:
                events = await _then_resolved(svc, embedded_broker, settings, alerts, 2)
                await until(lambda: len(pd.events) == 6, what="PagerDuty's triggers and resolves")
                sent = {r: svc.deliveries(r, "sent") for r in ("pd", "hook")}
            resolves = [fp for action, fp in pd_actions(pd.events) if action == "resolve"]
            assert sorted(resolves) == [a.fingerprint for a in alerts[:2]]
            told = [(s.body["status"], s.body["alerts"][0]["fingerprint"]) for s in hook.requests]
            assert sorted(told) == [("firing", a.fingerprint) for a in alerts]
            assert sent == {"pd": 6, "hook": 4}
            total = committed(embedded_broker, settings.topic_alerts, settings.notify_group)
            assert sum(total.values()) == len(events)  # the quiet resolves settled too

    asyncio.run(main())
