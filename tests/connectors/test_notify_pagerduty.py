"""PagerDuty Events v2 against a local fake that validates every body against the spec."""

from __future__ import annotations

import asyncio
import random
from email.utils import formatdate

import orjson
import pytest
from pydantic import SecretStr

from connectors.notify import (
    Dispatcher,
    Outcome,
    PagerDutyConfig,
    PagerDutyNotifier,
    RetryPolicy,
    classify_status,
    parse_retry_after,
)
from connectors.notify.pagerduty import BODY_LIMIT, dedup_key
from tests.connectors.notify_fakes import (
    FakeClock,
    FakePagerDuty,
    Reply,
    make_alert,
    note,
    resolved,
)

KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY12"


def _notifier(url: str, clock: FakeClock, timeout_s: float = 2.0) -> PagerDutyNotifier:
    config = PagerDutyConfig(
        routing_key=SecretStr(KEY), url=f"{url}/v2/enqueue", timeout_s=timeout_s
    )
    return PagerDutyNotifier("pd", config, clock=clock)


def test_trigger_ack_resolve_are_spec_valid() -> None:
    async def main() -> None:
        clock = FakeClock()
        pd = FakePagerDuty(KEY, clock)
        async with pd.running() as url:
            notifier = _notifier(url, clock)
            alert = make_alert()
            other = make_alert(alert_id="a-2", fingerprint="fp0002", severity="warning")
            key = '{}:{alertname="p99"}'
            results = [
                await notifier.send(note(alert, group_key=key)),
                await notifier.send(note(alert, other, group_key=key, reason="update")),
                await notifier.send(note(alert, other, group_key=key, acknowledged=True)),
                await notifier.send(note(resolved(alert), resolved(other), group_key=key)),
            ]
            await notifier.close()
        assert [r.outcome for r in results] == [Outcome.SENT] * 4
        assert pd.invalid == []
        actions = [e["event_action"] for e in pd.events]
        # One incident per group: a second trigger on the same dedup_key merges into it.
        assert actions == ["trigger", "trigger", "acknowledge", "resolve"]
        assert {e["dedup_key"] for e in pd.events} == {key}
        assert pd.events[1]["payload"]["summary"].startswith("[2 firing]")
        assert [a["fingerprint"] for a in pd.events[1]["payload"]["custom_details"]["alerts"]] == [
            "fp0001",
            "fp0002",
        ]
        trigger = pd.events[0]
        payload = trigger["payload"]
        assert payload["severity"] == "critical"
        assert payload["source"] == "node-7"
        assert payload["component"] == "llama-70b"
        assert payload["group"] == "gw-eu-1"
        assert payload["class"] == "latency_ewma"
        (details,) = payload["custom_details"]["alerts"]
        assert details["observed"] == 2.4 and details["expected"] == 0.9
        assert details["bounds"] == {"lower": 0.5, "upper": 1.3}
        assert details["labels"]["model"] == "llama-70b"
        assert "EWMA" in details["explanation"]
        assert "truncated" not in payload["custom_details"]
        assert [link["text"] for link in trigger["links"]] == ["Runbook", "Dashboard"]

    asyncio.run(main())


@pytest.mark.parametrize("severity", ["critical", "error", "warning", "info"])
def test_severity_maps_one_to_one(severity: str) -> None:
    config = PagerDutyConfig(routing_key=SecretStr(KEY))
    event = PagerDutyNotifier("pd", config).event(note(make_alert(severity=severity)))
    assert event["payload"]["severity"] == severity


def test_long_summary_truncated_to_1024_and_image_attached() -> None:
    async def main() -> None:
        clock = FakeClock()
        pd = FakePagerDuty(KEY, clock)
        async with pd.running() as url:
            notifier = _notifier(url, clock)
            alert = make_alert(
                title="t" * 500,
                summary="é🙂" * 2000,
                labels={},
                annotations={"image_url": "https://img.example/p.png"},
            )
            result = await notifier.send(note(alert))
            await notifier.close()
        assert result.outcome is Outcome.SENT
        assert pd.invalid == []
        payload = pd.events[0]["payload"]
        assert len(payload["summary"]) == 1024 and payload["summary"].endswith("…")
        assert payload["source"] == "llmwatch"
        assert pd.events[0]["images"][0]["src"] == "https://img.example/p.png"

    asyncio.run(main())


# Each answer from PagerDuty -> what one delivery comes to (after retries).
RETRY_TABLE = [
    (Reply(status=400, body='{"status":"invalid"}'), Outcome.DEAD_LETTERED, 1),
    (Reply(status=403), Outcome.DEAD_LETTERED, 1),
    (Reply(status=404), Outcome.DEAD_LETTERED, 1),
    (Reply(status=413), Outcome.DEAD_LETTERED, 1),
    (Reply(status=429), Outcome.SENT, 2),
    (Reply(status=500), Outcome.SENT, 2),
    (Reply(status=502), Outcome.SENT, 2),
    (Reply(status=503), Outcome.SENT, 2),
    (Reply(action="hang"), Outcome.SENT, 2),
    (Reply(action="drop"), Outcome.SENT, 2),
]


@pytest.mark.parametrize(("reply", "outcome", "attempts"), RETRY_TABLE)
def test_retry_table(reply: Reply, outcome: Outcome, attempts: int) -> None:
    async def main() -> None:
        clock = FakeClock()
        pd = FakePagerDuty(KEY, clock)
        pd.plan(reply)
        letters: list[object] = []
        # Only the hanging reply needs a short timeout; the others get a long one, so a
        # loaded machine's slow answer is not a timeout (an extra attempt) by mistake.
        timeout_s = 1.0 if reply.action == "hang" else 30.0
        async with pd.running() as url:
            dispatcher = Dispatcher(
                [_notifier(url, clock, timeout_s=timeout_s)],
                clock=clock,
                policy=RetryPolicy(rng=random.Random(1)),
                on_dead_letter=letters.append,
            )
            result = await dispatcher.submit(note(make_alert(), receiver="pd"))
            await dispatcher.close()
        assert result.outcome is outcome
        assert result.attempts == attempts
        assert len(pd.requests) == attempts
        assert len(letters) == (1 if outcome is Outcome.DEAD_LETTERED else 0)
        if outcome is Outcome.DEAD_LETTERED:
            assert result.http_status == reply.status

    asyncio.run(main())


@pytest.mark.parametrize("header", ["seconds", "http-date"])
def test_retry_after_is_honoured(header: str) -> None:
    async def main() -> None:
        clock = FakeClock()
        pd = FakePagerDuty(KEY, clock)
        value = "37" if header == "seconds" else formatdate(clock.now() + 37, usegmt=True)
        pd.plan(Reply(status=429, headers={"Retry-After": value}))
        async with pd.running() as url:
            dispatcher = Dispatcher([_notifier(url, clock)], clock=clock)
            counts = await dispatcher.dispatch([note(make_alert(), receiver="pd")])
            await dispatcher.close()
        assert counts.sent == 1 and counts.retried == 1
        assert pd.requests[1].at - pd.requests[0].at == pytest.approx(37, abs=1)
        assert any(s == pytest.approx(37, abs=1) for s in clock.sleeps)

    asyncio.run(main())


def test_gives_up_at_deadline_and_dead_letters() -> None:
    async def main() -> None:
        clock = FakeClock()
        pd = FakePagerDuty(KEY, clock)
        pd.rule = lambda seen: Reply(status=503)
        letters: list[object] = []
        async with pd.running() as url:
            dispatcher = Dispatcher(
                [_notifier(url, clock)],
                clock=clock,
                policy=RetryPolicy(deadline_s=120, rng=random.Random(3)),
                on_dead_letter=letters.append,
            )
            counts = await dispatcher.dispatch([note(make_alert(), receiver="pd")])
            await dispatcher.close()
        assert counts.dead_lettered == 1 and counts.sent == 0
        assert counts.retried == len(pd.requests) - 1 >= 2
        assert pd.requests[-1].at - pd.requests[0].at <= 120
        assert "gave up" in letters[0].reason  # type: ignore[attr-defined]

    asyncio.run(main())


def test_phase_from_model_copy_with_plain_strings() -> None:
    # Upstream code may model_copy(update={"status": "resolved"}): a str, not the enum.
    copied = make_alert().model_copy(update={"status": "resolved"})
    assert note(copied).phase == "resolved"
    assert note(make_alert(), acknowledged=True).phase == "acknowledged"


def test_a_huge_label_is_cut_to_fit_pagerduty_with_a_marker() -> None:
    """One 1.2 MB label made a 1.2 MB event; PagerDuty takes at most 512 KB."""

    async def main() -> None:
        clock = FakeClock()
        pd = FakePagerDuty(KEY, clock)
        big = {"model": "m", "blob": "x" * 1_200_000}
        alerts = [make_alert(fingerprint=f"f{i}", alert_id=f"a{i}", labels=big) for i in range(3)]
        many = [
            make_alert(fingerprint=f"g{i}", alert_id=f"b{i}", explanation="y" * 4000)
            for i in range(400)
        ]
        async with pd.running() as url:
            notifier = _notifier(url, clock)
            results = [await notifier.send(note(*alerts)), await notifier.send(note(*many))]
            await notifier.close()
        assert [r.outcome for r in results] == [Outcome.SENT] * 2 and pd.invalid == []
        for raw, event in zip([r.raw for r in pd.requests], pd.events, strict=True):
            assert len(raw) <= BODY_LIMIT
            details = event["payload"]["custom_details"]
            assert details["alerts"], "at least the first alerts are shown"
            assert "left out" in details.get("truncated", "") or all(
                len(v) <= 2048 for a in details["alerts"] for v in a["labels"].values()
            )
        many_details = pd.events[1]["payload"]["custom_details"]
        assert "left out" in many_details["truncated"]
        assert len(many_details["alerts"]) < 400

    asyncio.run(main())


def test_links_are_http_only_and_text_is_cleaned() -> None:
    config = PagerDutyConfig(routing_key=SecretStr(KEY))
    alert = make_alert(
        title="gpu-01\u202e10-upg\u200b",
        links={"runbook": "javascript:alert(1)", "dashboard": "https://grafana.example/d"},
        annotations={"image_url": "data:image/png;base64,AAAA"},
    )
    event = PagerDutyNotifier("pd", config).event(note(alert))
    assert [link["href"] for link in event["links"]] == ["https://grafana.example/d"]
    assert "images" not in event
    text = orjson.dumps(event).decode()
    assert "\u202e" not in text and "\u200b" not in text and "gpu-0110-upg" in text
    assert event["payload"]["summary"].startswith("gpu-0110-upg")


def test_a_long_group_key_becomes_a_stable_dedup_key() -> None:
    long = "{}:{" + "x" * 400 + "}"
    assert dedup_key(long) == dedup_key(long) and len(dedup_key(long)) <= 255
    assert dedup_key('{}:{a="1"}') == '{}:{a="1"}'


def test_fake_rejects_bodies_the_spec_rejects() -> None:
    # The validator must really resolve the spec's $refs, or the tests above prove nothing.
    pd = FakePagerDuty(KEY)
    good = {"routing_key": KEY, "event_action": "resolve", "dedup_key": "x"}
    assert pd.errors_for(good) == []
    bad_severity = {
        "routing_key": KEY,
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "h", "severity": "fatal"},
    }
    assert any("fatal" in e for e in pd.errors_for(bad_severity))
    no_source = {
        "routing_key": KEY,
        "event_action": "trigger",
        "payload": {"summary": "s", "severity": "info"},
    }
    assert any("source" in e for e in pd.errors_for(no_source))
    assert any("event_action" in e for e in pd.errors_for({"routing_key": KEY}))
    assert any("href" in e for e in pd.errors_for({**good, "links": [{"text": "x"}]}))


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.SENT),
        (202, Outcome.SENT),
        (400, Outcome.PERMANENT),
        (401, Outcome.PERMANENT),
        (404, Outcome.PERMANENT),
        (408, Outcome.PERMANENT),
        (429, Outcome.RETRYABLE),
        (500, Outcome.RETRYABLE),
        (503, Outcome.RETRYABLE),
        (599, Outcome.RETRYABLE),
    ],
)
def test_status_classification(status: int, outcome: Outcome) -> None:
    assert classify_status(status) is outcome


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(formatdate(now + 90, usegmt=True), now) == pytest.approx(90)
    assert parse_retry_after(formatdate(now - 90, usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_client_url_is_the_lead_alerts_place_in_the_console() -> None:
    alert = make_alert()
    plain = PagerDutyNotifier("pd", PagerDutyConfig(routing_key=SecretStr(KEY)))
    event = plain.event(note(alert, external_url="https://llmwatch.example"))
    assert event["client_url"] == f"https://llmwatch.example/#alert-{alert.fingerprint}"
    assert "client_url" not in plain.event(note(alert))  # no console configured
    fixed = PagerDutyConfig(routing_key=SecretStr(KEY), client_url="https://ops.example/llm")
    event = PagerDutyNotifier("pd", fixed).event(note(alert, external_url="https://x.example"))
    assert event["client_url"] == "https://ops.example/llm"


def test_group_labels_of_group_by_all_are_cut_to_fit_too() -> None:
    # group_by: ["..."] makes every label a group label; they were added before the
    # budget was counted, so many large ones made an event PagerDuty refuses.
    many = {f"label_{i:04d}": "v" * 1500 for i in range(2000)}
    notifier = PagerDutyNotifier("pd", PagerDutyConfig(routing_key=SecretStr(KEY)))
    event = notifier.event(note(make_alert(), group_labels=many))
    assert len(orjson.dumps(event)) < BODY_LIMIT
    details = event["payload"]["custom_details"]
    assert 0 < len(details["group_labels"]) < len(many)
    left = len(many) - len(details["group_labels"])
    assert details["group_labels_truncated"] == f"{left} group label(s) left out"
