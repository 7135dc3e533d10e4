"""Slack webhook and bot modes against a local fake that checks Block Kit rules; escaping."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.notify import (
    JsonFileMessageStore,
    Outcome,
    SlackBotConfig,
    SlackBotNotifier,
    SlackWebhookConfig,
    SlackWebhookNotifier,
)
from connectors.notify.slack_format import SlackMessageBuilder, escape_mrkdwn, escape_text
from tests.connectors.notify_fakes import (
    FakeClock,
    FakeSlack,
    Reply,
    block_kit_errors,
    make_alert,
    note,
    resolved,
)

TOKEN = "xoxb-000000000000-TESTTOKENtesttoken"
HOOK = "/services/T0000TEST/B0000TEST/SECRETsecretSECRET1234"

EVIL = [
    "<!channel> wake up",
    "<!here|here>",
    "<!everyone>",
    "@here look",
    "@channel now",
    "<http://evil.example|click me>",
    "<@U12345> and <#C999|general>",
    "*bold* _it_ ~strike~ `code` ```block```",
    "a & b < c > d &amp; &lt;",
]


def _all_text(message: dict[str, Any]) -> list[str]:
    """Every string Slack will parse: the fallback and every text object in the blocks."""
    found = [message["text"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("plain_text", "mrkdwn"):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message["blocks"])
    return found


@pytest.mark.parametrize("evil", EVIL)
def test_event_data_is_escaped_everywhere(evil: str) -> None:
    alert = make_alert(
        title=f"t {evil}",
        summary=evil,
        explanation=evil,
        detector=f"d{evil}"[:200],
        fingerprint="fp<!channel>",
        labels={"model": evil, "tenant": "<!subteam^S1>"},
    )
    builder = SlackMessageBuilder()
    group = note(alert, make_alert(alert_id="a2", fingerprint="fp2", title=evil))
    for n in (note(alert), group):
        message = {"text": builder.text(n), "blocks": builder.blocks(n)}
        assert block_kit_errors(message) == []
        _check_escaped(message, evil)


def _check_escaped(message: dict[str, Any], evil: str) -> None:
    for text in _all_text(message):
        # Our own date token is the only Slack control sequence we emit.
        without_date = re.sub(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[^<>|]+>", "", text)
        assert "<" not in without_date and ">" not in without_date, text
        assert re.search(r"@(here|channel|everyone)", text, re.IGNORECASE) is None, text
        # No bare '&' that is not one of the three entities.
        assert re.search(r"&(?!amp;|lt;|gt;)", text) is None, text


def test_escape_rules() -> None:
    assert escape_text("a&b<c>d") == "a&amp;b&lt;c&gt;d"
    assert escape_text("&lt;") == "&amp;lt;"
    assert escape_text("@here") == "@\u200bhere"
    assert escape_text("mail@hereford.example") == "mail@hereford.example"
    assert "\u200b*" in escape_mrkdwn("*x*")
    assert escape_mrkdwn("<http://evil|click>") == "&lt;http://evil|click&gt;"


def test_link_spoofing_urls_are_not_rendered() -> None:
    alert = make_alert(
        links={"runbook": "javascript:alert(1)", "dashboard": "https://ok.example/a|evil>"}
    )
    blocks = SlackMessageBuilder().blocks(note(alert))
    assert not [b for b in blocks if b["type"] == "actions"]
    good = SlackMessageBuilder().blocks(note(make_alert()))
    (actions,) = [b for b in good if b["type"] == "actions"]
    assert [e["url"] for e in actions["elements"]] == [
        "https://runbooks.example/latency",
        "https://grafana.example/d/llm",
    ]


def test_huge_fields_stay_within_block_kit_limits() -> None:
    alert = make_alert(
        title="T" * 512,
        summary="S" * 4096,
        explanation="E" * 4096,
        labels={f"k{i}": "v" * 200 for i in range(40)},
    )
    builder = SlackMessageBuilder()
    many = [make_alert(alert_id=f"a{i}", fingerprint=f"f{i}", title="T" * 512) for i in range(60)]
    for n in (note(alert), note(*many)):
        assert block_kit_errors({"text": builder.text(n), "blocks": builder.blocks(n)}) == []
    listing = builder.blocks(note(*many))[1]["text"]["text"].split("\n")
    assert listing[-1] == f"… and {60 - (len(listing) - 1)} more" and len(listing) >= 9


def test_bidi_and_zero_width_characters_are_removed() -> None:
    """``gpu-01<RLO>10-upg`` would show as another host name; zero-width ones hide text."""
    alert = make_alert(
        title="host gpu-01\u202e10-upg\u2066x\u2069",
        summary="ok\u200b\u200d\ufeff done",
        labels={"host": "gpu-01\u202e10-upg"},
    )
    builder = SlackMessageBuilder()
    message = {"text": builder.text(note(alert)), "blocks": builder.blocks(note(alert))}
    dumped = json.dumps(message, ensure_ascii=False)
    for ch in ("\u202e", "\u2066", "\u2069", "\u200d", "\ufeff"):
        assert ch not in dumped
    assert "gpu-0110-upg" in dumped


def test_webhook_mode_posts_valid_messages_and_classifies_errors() -> None:
    async def main() -> None:
        clock = FakeClock()
        slack = FakeSlack(TOKEN, HOOK, clock)
        slack.plan(
            Reply(status=404, body="no_service"), Reply(status=429, headers={"Retry-After": "5"})
        )
        async with slack.running() as url:
            notifier = SlackWebhookNotifier(
                "slack", SlackWebhookConfig(url=SecretStr(url + HOOK)), clock=clock
            )
            gone = await notifier.send(note(make_alert()))
            limited = await notifier.send(note(make_alert()))
            ok = await notifier.send(note(make_alert()))
            ok_resolved = await notifier.send(note(resolved(make_alert())))
            await notifier.close()
        assert gone.outcome is Outcome.PERMANENT and gone.http_status == 404
        assert limited.outcome is Outcome.RETRYABLE and limited.retry_after_s == 5
        assert ok.outcome is Outcome.SENT and ok_resolved.outcome is Outcome.SENT
        assert slack.invalid == []
        last = slack.requests[-1].body
        assert last["text"].startswith("[RESOLVED]")
        assert last["blocks"][0]["text"]["text"].startswith(":white_check_mark: RESOLVED")

    asyncio.run(main())


@pytest.mark.parametrize("mode", ["update", "thread", "both"])
def test_bot_mode_resolve_updates_original_across_restart(mode: str, tmp_path: Path) -> None:
    async def main() -> None:
        clock = FakeClock()
        slack = FakeSlack(TOKEN, HOOK, clock)
        store_path = tmp_path / "slack_ts.json"
        async with slack.running() as url:
            config = SlackBotConfig(
                token=SecretStr(TOKEN),
                channel="C0ALERTS",
                base_url=f"{url}/api/",
                resolve_mode=mode,
            )
            first = SlackBotNotifier("slack", config, JsonFileMessageStore(store_path), clock)
            assert (await first.send(note(make_alert()))).outcome is Outcome.SENT
            await first.close()
            # A restarted worker finds the ts in the file and edits that message.
            second = SlackBotNotifier("slack", config, JsonFileMessageStore(store_path), clock)
            assert (await second.send(note(resolved(make_alert())))).outcome is Outcome.SENT
            await second.close()
        assert slack.invalid == []
        assert len(slack.messages) == 1
        (ts, message) = next(iter(slack.messages.items()))
        paths = [s.path for s in slack.requests]
        if mode == "thread":
            assert paths == ["/api/chat.postMessage", "/api/chat.postMessage"]
            assert message["text"].startswith("[FIRING:1]")
        else:
            assert paths[1] == "/api/chat.update"
            assert message["text"].startswith("[RESOLVED]")
        if mode in ("thread", "both"):
            assert [r["thread_ts"] for r in slack.thread_replies] == [ts]
        assert json.loads(store_path.read_text()) == {}

    asyncio.run(main())


def test_bot_mode_missing_original_posts_afresh_and_api_errors_classified() -> None:
    async def main() -> None:
        clock = FakeClock()
        slack = FakeSlack(TOKEN, HOOK, clock)
        async with slack.running() as url:
            config = SlackBotConfig(token=SecretStr(TOKEN), channel="C1", base_url=f"{url}/api/")
            bot = SlackBotNotifier("slack", config, clock=clock)
            assert (await bot.send(note(make_alert()))).outcome is Outcome.SENT
            slack.messages.clear()  # someone deleted the message in Slack
            assert (await bot.send(note(resolved(make_alert())))).outcome is Outcome.SENT
            slack.plan(
                Reply(
                    status=200,
                    body='{"ok":false,"error":"channel_not_found"}',
                    headers={"Content-Type": "application/json"},
                )
            )
            not_found = await bot.send(note(make_alert(fingerprint="fp2")))
            slack.plan(
                Reply(
                    status=200,
                    body='{"ok":false,"error":"ratelimited"}',
                    headers={"Content-Type": "application/json"},
                )
            )
            limited = await bot.send(note(make_alert(fingerprint="fp3")))
            slack.plan(
                Reply(
                    status=429,
                    body='{"ok":false,"error":"ratelimited"}',
                    headers={"Content-Type": "application/json", "Retry-After": "30"},
                )
            )
            limited_429 = await bot.send(note(make_alert(fingerprint="fp4")))
            slack.plan(Reply(status=503, body="{}", headers={"Content-Type": "application/json"}))
            unavailable = await bot.send(note(make_alert(fingerprint="fp5")))
            await bot.close()
        assert [s.path for s in slack.requests[:3]] == [
            "/api/chat.postMessage",
            "/api/chat.update",
            "/api/chat.postMessage",
        ]
        assert [m["text"][:10] for m in slack.messages.values()] == ["[RESOLVED]"]
        assert not_found.outcome is Outcome.PERMANENT and "channel_not_found" in not_found.detail
        assert limited.outcome is Outcome.RETRYABLE
        assert limited_429.outcome is Outcome.RETRYABLE and limited_429.retry_after_s == 30
        assert unavailable.outcome is Outcome.RETRYABLE and unavailable.http_status == 503

    asyncio.run(main())


def test_bot_mode_timeout_and_dropped_connection_are_retryable() -> None:
    async def main() -> None:
        clock = FakeClock()
        slack = FakeSlack(TOKEN, HOOK, clock)
        slack.plan(Reply(action="hang"), Reply(action="drop"))
        async with slack.running() as url:
            config = SlackBotConfig(
                token=SecretStr(TOKEN), channel="C1", base_url=f"{url}/api/", timeout_s=0.3
            )
            bot = SlackBotNotifier("slack", config, clock=clock)
            hung = await bot.send(note(make_alert()))
            dropped = await bot.send(note(make_alert()))
            await bot.close()
        assert hung.outcome is Outcome.RETRYABLE and "Timeout" in hung.detail
        assert dropped.outcome is Outcome.RETRYABLE

    asyncio.run(main())


def test_bot_mode_one_message_per_group_updated_in_place_with_thread_updates() -> None:
    async def main() -> None:
        clock = FakeClock()
        slack = FakeSlack(TOKEN, HOOK, clock)
        a = make_alert()
        b = make_alert(alert_id="a-2", fingerprint="fp0002", labels={"model": "llama-70b"})
        key = '{}:{model="llama-70b"}'
        async with slack.running() as url:
            config = SlackBotConfig(token=SecretStr(TOKEN), channel="C1", base_url=f"{url}/api/")
            bot = SlackBotNotifier("slack", config, clock=clock)
            for n in (
                note(a, group_key=key),
                note(a, b, group_key=key, reason="update"),
                note(b, resolved(a), group_key=key, reason="update"),
                note(b, group_key=key, acknowledged=True, reason="acknowledged"),
                note(resolved(b), group_key=key),
            ):
                assert (await bot.send(n)).outcome is Outcome.SENT
            await bot.close()
        assert slack.invalid == []
        (message,) = slack.messages.values()  # one message for the whole group
        assert message["text"].startswith("[RESOLVED]")
        paths = [s.path for s in slack.requests]
        assert paths.count("/api/chat.update") == 4
        replies = [r["text"] for r in slack.thread_replies]
        assert len(replies) == 4 and "2 firing" in replies[0]
        assert "1 resolved" in replies[1] and "ACKNOWLEDGED" in replies[2]
        assert "acknowledged by someone" in replies[2]

    asyncio.run(main())


def test_the_console_button_points_at_the_alert_in_the_web_console() -> None:
    alert = make_alert()
    blocks = SlackMessageBuilder().blocks(note(alert, external_url="https://llmwatch.example/"))
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    urls = {e["text"]["text"]: e["url"] for e in actions["elements"]}
    assert urls["Console"] == f"https://llmwatch.example/#alert-{alert.fingerprint}"
    bad = SlackMessageBuilder().blocks(note(alert, external_url="javascript:alert(1)"))
    (actions,) = [b for b in bad if b["type"] == "actions"]
    assert "Console" not in {e["text"]["text"] for e in actions["elements"]}
