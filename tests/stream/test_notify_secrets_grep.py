"""Every notifier failure path at once, then a grep for the secrets in everything it left.

Captured: all log records (DEBUG and up, every logger), stdout/stderr, the
dead-letter topic, /metrics, /api/alerts, /api/silences, and every file the
notifier wrote under its state dir.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
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
    make_alert,
)
from tests.connectors.notify_harness import (
    API_TOKEN,
    PD_KEY,
    SLACK_HOOK_PATH,
    SLACK_TOKEN,
    WEBHOOK_PATH,
    WEBHOOK_SECRET,
    config_for,
    publish,
    running,
    settings_for,
)

_JSON = {"Content-Type": "application/json"}
SECRETS = [PD_KEY, API_TOKEN, SLACK_TOKEN, WEBHOOK_SECRET, WEBHOOK_PATH, SLACK_HOOK_PATH]


def test_no_failure_path_leaks_a_secret(
    embedded_broker: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    consume_all: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    pd = FakePagerDuty(PD_KEY, clock)
    # Providers echo what they got: the fakes answer with the secret in the body.
    pd.rule = lambda seen: Reply(status=400, body=f'{{"message":"bad key {PD_KEY}"}}')
    slack = FakeSlack(SLACK_TOKEN, SLACK_HOOK_PATH, clock)
    hook = FakeWebhook(clock)
    hook.plan(Reply(action="hang"), Reply(action="drop"))

    def slack_rule(seen: Any) -> Reply:
        if seen.path.startswith("/api/"):
            return Reply(200, '{"ok": false, "error": "invalid_auth"}', _JSON)
        return Reply(status=404, body=f"no_service for {SLACK_HOOK_PATH}")

    slack.rule = slack_rule
    hook.rule = lambda seen: Reply(status=500, body=f"proxy error for {WEBHOOK_PATH}")

    async def main() -> dict[str, Any]:
        async with pd.running() as pd_url, slack.running() as slack_url, hook.running() as hook_url:
            settings = settings_for(
                embedded_broker,
                tmp_path / "state",
                slack_webhook_url=SecretStr(f"{slack_url}{SLACK_HOOK_PATH}"),
                slack_bot_token=SecretStr(SLACK_TOKEN),
                webhook_url=SecretStr(f"{hook_url}{WEBHOOK_PATH}"),
                webhook_secret=SecretStr(WEBHOOK_SECRET),
            )
            receivers: list[dict[str, Any]] = [
                {"name": "pd", "type": "pagerduty", "api_url": f"{pd_url}/v2/enqueue"},
                {"name": "slackhook", "type": "slack_webhook"},
                {
                    "name": "slackbot",
                    "type": "slack_bot",
                    "channel": "C1",
                    "api_base_url": f"{slack_url}/api/",
                },
                {"name": "hook", "type": "webhook", "timeout_s": 0.5},
                {"name": "console", "type": "console", "path": str(tmp_path / "console.log")},
            ]
            names = [r["name"] for r in receivers]
            route = {"receiver": "pd", "routes": [{"receiver": n, "continue": True} for n in names]}
            config = config_for(receivers, route, retry={"base_s": 1, "cap_s": 5, "deadline_s": 30})
            alerts = [make_alert(alert_id=f"a{i}", fingerprint=f"fpleak{i}") for i in range(2)]
            publish(embedded_broker, settings.topic_alerts, [*alerts, b'{"kind": "alert"}'])
            async with running(settings, config, clock) as svc:
                await svc.settled(3, timeout_s=25)
                counts = {
                    n: {o: svc.deliveries(n, o) for o in ("sent", "dead_lettered")} for n in names
                }
                # Someone guessing tokens at the API.
                await svc.post("/api/silences", {"x": 1}, headers={"Authorization": "Bearer x"})
                texts: list[str] = []
                for path in ("/metrics", "/api/alerts", "/api/silences", "/healthz"):
                    async with svc.http.get(f"{svc.url}{path}") as resp:
                        texts.append(await resp.text())
            dead = consume_all(settings.topic_deadletter, expected=9)
            return {"counts": counts, "texts": texts, "dead": dead, "state": settings.state_dir}

    out = asyncio.run(main())
    counts = out["counts"]
    assert counts["console"] == {"sent": 2, "dead_lettered": 0}
    for name in ("pd", "slackhook", "slackbot", "hook"):
        assert counts[name] == {"sent": 0, "dead_lettered": 2}, name
    dead = [json.loads(r.value) for r in out["dead"]]
    assert len(dead) == 9
    reasons = {d["location"]: d["reason"] for d in dead}
    assert "HTTP 400" in reasons["receiver:pd"] and "bad key ***" in reasons["receiver:pd"]
    assert "invalid_auth" in reasons["receiver:slackbot"]
    assert "HTTP 404" in reasons["receiver:slackhook"]
    assert "gave up" in reasons["receiver:hook"]
    assert "not a valid alert" in reasons["receiver:-"]

    captured = capfd.readouterr()
    haystack = [
        captured.out,
        captured.err,
        *(r.getMessage() for r in caplog.records),
        *(str(r.exc_info) for r in caplog.records if r.exc_info),
        *out["texts"],
        *(json.dumps(d) for d in dead),
        *(base64.b64decode(d["raw_b64"]).decode() for d in dead),
        *(p.read_text() for p in Path(out["state"]).rglob("*") if p.is_file()),
        (tmp_path / "console.log").read_text(),
    ]
    assert len(caplog.records) > 10  # the failures were logged, so the grep means something
    for secret in SECRETS:
        leaks = [text for text in haystack if secret in text]
        assert leaks == [], f"secret {secret[:6]}... leaked"
    report = {
        "scenario": "permanent_failures_and_secrets",
        "sent": sum(c["sent"] for c in counts.values()),
        "dead_lettered": len(dead),
        "lost": 0,  # every delivery is either sent or on the dead-letter topic
        "leaks": 0,
    }
    print(json.dumps(report))
