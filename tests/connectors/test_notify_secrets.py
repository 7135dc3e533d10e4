"""No failure path may leak a routing key, webhook URL or token into logs, results or letters."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.notify import (
    DeadLetterRecord,
    DeliveryResult,
    Dispatcher,
    Notifier,
    PagerDutyConfig,
    PagerDutyNotifier,
    Redactor,
    RetryPolicy,
    SlackBotConfig,
    SlackBotNotifier,
    SlackWebhookConfig,
    SlackWebhookNotifier,
    WebhookConfig,
    WebhookNotifier,
)
from tests.connectors.notify_fakes import (
    FakeClock,
    FakePagerDuty,
    FakeService,
    FakeSlack,
    FakeWebhook,
    Reply,
    make_alert,
    note,
)

PD_KEY = "PDKEYpdkeyPDKEYpdkeyPDKEY123456"
TOKEN = "xoxb-111111111111-SLACKTOKENslacktoken"
HOOK_PATH = "/services/T0SECRET/B0SECRET/HOOKSECREThooksecret99"
GENERIC_TOKEN = "GENERICwebhookTOKEN42"
HMAC_KEY = "HMACsigningKEY-0042"

SECRETS = [PD_KEY, TOKEN, HOOK_PATH, "HOOKSECREThooksecret99", GENERIC_TOKEN, HMAC_KEY]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _failures(echo: str) -> list[Reply]:
    # Hostile answers: error bodies that quote the secret back at us.
    return [
        Reply(status=400, body=f"bad request for {echo}"),
        Reply(status=403, body=echo),
        Reply(status=429, headers={"Retry-After": "1"}, body=echo),
        Reply(status=500, body=f"oops {echo}"),
        Reply(action="hang"),
        Reply(action="drop"),
    ]


def _replan(fake: FakeSlack, echo: str) -> None:
    # Each Slack mode gets error bodies quoting its own secret (the one it can know).
    fake.script.clear()
    fake.plan(*_failures(echo), *[Reply(status=503, body=echo)] * 40)


def test_no_secret_in_logs_results_or_dead_letters(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, slack_sdk and aiohttp included
    seen: list[Any] = []

    async def drive(notifier: Notifier, clock: FakeClock) -> None:
        letters: list[DeadLetterRecord] = []
        dispatcher = Dispatcher(
            [notifier],
            clock=clock,
            on_dead_letter=letters.append,
            policy=RetryPolicy(deadline_s=30, rng=random.Random(5)),
        )
        for i in range(8):
            alert = make_alert(fingerprint=f"{notifier.name}{i}")
            result: DeliveryResult = await dispatcher.submit(note(alert, receiver=notifier.name))
            seen.append(result)
        seen.extend(letters)
        seen.append(dispatcher.counts)
        await dispatcher.close()

    async def main() -> None:
        clock = FakeClock()
        pd = FakePagerDuty(PD_KEY, clock)
        slack = FakeSlack(TOKEN, HOOK_PATH, clock)
        hook = FakeWebhook(clock)
        fake: FakeService
        for fake, echo in ((pd, PD_KEY), (hook, GENERIC_TOKEN)):
            # Every failure kind, then an outage that outlasts the deadline.
            fake.plan(*_failures(echo), *[Reply(status=503, body=echo)] * 40)
        dead = f"http://127.0.0.1:{_closed_port()}"
        async with pd.running() as pd_url, slack.running() as slack_url, hook.running() as hook_url:
            for pd_base, slack_base, hook_base in ((pd_url, slack_url, hook_url), (dead,) * 3):
                cfg = PagerDutyConfig(
                    routing_key=SecretStr(PD_KEY), url=f"{pd_base}/v2/enqueue", timeout_s=0.3
                )
                await drive(PagerDutyNotifier("pd", cfg, clock), clock)
                _replan(slack, HOOK_PATH)
                hook_cfg = SlackWebhookConfig(url=SecretStr(slack_base + HOOK_PATH), timeout_s=0.3)
                await drive(SlackWebhookNotifier("slackhook", hook_cfg, clock), clock)
                _replan(slack, TOKEN)
                bot_cfg = SlackBotConfig(
                    token=SecretStr(TOKEN),
                    channel="C1",
                    base_url=f"{slack_base}/api/",
                    timeout_s=0.3,
                )
                await drive(SlackBotNotifier("slackbot", bot_cfg, clock=clock), clock)
                wh_cfg = WebhookConfig(
                    url=SecretStr(f"{hook_base}/x?token={GENERIC_TOKEN}"),
                    hmac_secret=SecretStr(HMAC_KEY),
                    timeout_s=0.3,
                )
                await drive(WebhookNotifier("hook", wh_cfg, clock), clock)
        for fake in (pd, slack, hook):
            assert len(fake.requests) >= 12
        # The hostile script really was exercised, for every receiver.
        letters = [x for x in seen if isinstance(x, DeadLetterRecord)]
        for name in ("pd", "slackhook", "slackbot", "hook"):
            mine = [x for x in letters if x.receiver == name]
            assert any(x.http_status in (400, 403) for x in mine), name
            assert any("gave up" in x.reason for x in mine), name
            assert any(x.http_status is None for x in mine), name

    asyncio.run(main())

    texts = [repr(x) for x in seen]
    for record in caplog.records:
        texts.append(record.getMessage())
        if record.exc_info:
            texts.append(logging.Formatter().formatException(record.exc_info))
    texts.append(caplog.text)
    assert len(caplog.records) > 10
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"secret leaked into: {text[:300]}"


def test_configs_and_redactor_hide_secrets() -> None:
    cfg = PagerDutyConfig(routing_key=SecretStr(PD_KEY))
    assert PD_KEY not in repr(cfg) and PD_KEY not in str(cfg.model_dump())
    redact = Redactor([SecretStr(f"https://hooks.example{HOOK_PATH}"), None])
    assert redact(f"POST https://hooks.example{HOOK_PATH} failed") == "POST *** failed"
    assert redact(f"path {HOOK_PATH} only") == "path *** only"
    assert "HOOKSECRET" not in redact("just the tail HOOKSECREThooksecret99")
    assert redact.exception(ValueError(f"bad {HOOK_PATH}")) == "ValueError: bad ***"
