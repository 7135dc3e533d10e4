"""Alertmanager-compatible webhook with HMAC signature; console receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
from pathlib import Path

from notify_fakes import FakeClock, FakeWebhook, make_alert, resolved
from pydantic import SecretStr

from connectors.notify import ConsoleNotifier, Outcome, WebhookConfig, WebhookNotifier
from connectors.notify.webhook import SIGNATURE_HEADER


def test_alertmanager_payload_and_signature() -> None:
    async def main() -> None:
        clock = FakeClock()
        hook = FakeWebhook(clock)
        async with hook.running() as url:
            config = WebhookConfig(
                url=SecretStr(f"{url}/am?token=abc123def456"),
                hmac_secret=SecretStr("s3cr3t-signing-key"),
                external_url="https://llmwatch.example",
            )
            notifier = WebhookNotifier("am", config, clock=clock)
            results = [
                await notifier.send(make_alert()),
                await notifier.send(resolved(make_alert())),
            ]
            await notifier.close()
        assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
        firing, done = (s.body for s in hook.requests)
        assert firing["version"] == "4" and firing["status"] == "firing"
        assert firing["receiver"] == "am" and firing["externalURL"] == "https://llmwatch.example"
        assert firing["groupKey"] and firing["groupLabels"] == {"fingerprint": "fp0001"}
        (a,) = firing["alerts"]
        assert set(a) == {
            "status",
            "labels",
            "annotations",
            "startsAt",
            "endsAt",
            "generatorURL",
            "fingerprint",
        }
        assert a["labels"]["model"] == "llama-70b" and a["labels"]["severity"] == "critical"
        assert a["startsAt"] == "2024-05-01T12:00:00Z" and a["endsAt"] == "0001-01-01T00:00:00Z"
        assert a["annotations"]["runbook_url"] == "https://runbooks.example/latency"
        assert firing["commonLabels"] == a["labels"]
        assert (
            done["status"] == "resolved" and done["alerts"][0]["endsAt"] == "2024-05-01T13:00:00Z"
        )
        for seen in hook.requests:
            expected = hmac.new(b"s3cr3t-signing-key", seen.raw, hashlib.sha256).hexdigest()
            assert seen.headers[SIGNATURE_HEADER] == f"sha256={expected}"

    asyncio.run(main())


def test_console_one_line_per_alert(tmp_path: Path) -> None:
    async def main() -> None:
        out = io.StringIO()
        path = tmp_path / "alerts.log"
        for notifier in (ConsoleNotifier(stream=out), ConsoleNotifier(path=path)):
            await notifier.send(make_alert(title="two\nlines"))
            await notifier.send(resolved(make_alert()))
        for text in (out.getvalue(), path.read_text()):
            lines = text.splitlines()
            assert len(lines) == 2
            assert "FIRING" in lines[0] and "two lines" in lines[0] and "observed=2.4" in lines[0]
            assert "RESOLVED" in lines[1] and "fp=fp0001" in lines[1]

    asyncio.run(main())
