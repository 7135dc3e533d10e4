"""Alertmanager-compatible webhook with HMAC signature; console receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
from pathlib import Path

from pydantic import SecretStr

from connectors.notify import ConsoleNotifier, Outcome, WebhookConfig, WebhookNotifier
from connectors.notify.webhook import SIGNATURE_HEADER
from tests.connectors.notify_fakes import FakeClock, FakeWebhook, make_alert, note, resolved


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
            one = make_alert()
            two = make_alert(
                alert_id="a-2",
                fingerprint="fp0002",
                labels={"model": "llama-70b", "gateway": "gw-us-2", "host": "node-8"},
                links={"runbook": "javascript:alert(1)"},
            )
            key = '{}:{model="llama-70b"}'
            group = {"model": "llama-70b"}
            results = [
                await notifier.send(note(one, two, group_key=key, group_labels=group)),
                await notifier.send(
                    note(resolved(one), resolved(two), group_key=key, group_labels=group)
                ),
            ]
            await notifier.close()
        assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
        firing, done = (s.body for s in hook.requests)
        assert firing["version"] == "4" and firing["status"] == "firing"
        assert firing["receiver"] == "am" and firing["externalURL"] == "https://llmwatch.example"
        assert firing["groupKey"] == key and firing["groupLabels"] == group
        assert firing["truncatedAlerts"] == 0
        assert set(firing) == {
            "version",
            "groupKey",
            "truncatedAlerts",
            "status",
            "receiver",
            "groupLabels",
            "commonLabels",
            "commonAnnotations",
            "externalURL",
            "alerts",
        }
        a, b = firing["alerts"]
        # No dashboard link on the second: generatorURL points at the console; a
        # javascript: runbook never becomes a link.
        assert b["generatorURL"] == "https://llmwatch.example/#alert-fp0002"  # the console
        assert a["generatorURL"] == "https://grafana.example/d/llm"
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
        assert firing["commonLabels"] == {
            k: v for k, v in a["labels"].items() if k not in ("gateway", "host")
        }
        # Same summary on both; only one has a runbook (the javascript: one is dropped).
        assert "summary" in firing["commonAnnotations"]
        assert "runbook_url" not in firing["commonAnnotations"]
        assert "runbook_url" not in firing["alerts"][1]["annotations"]
        assert [x["fingerprint"] for x in firing["alerts"]] == ["fp0001", "fp0002"]
        assert (
            done["status"] == "resolved" and done["alerts"][0]["endsAt"] == "2024-05-01T13:00:00Z"
        )
        for seen in hook.requests:
            expected = hmac.new(b"s3cr3t-signing-key", seen.raw, hashlib.sha256).hexdigest()
            assert seen.headers[SIGNATURE_HEADER] == f"sha256={expected}"

    asyncio.run(main())


def test_console_one_line_per_notification_then_one_per_alert(tmp_path: Path) -> None:
    async def main() -> None:
        out = io.StringIO()
        path = tmp_path / "alerts.log"
        for notifier in (ConsoleNotifier(stream=out), ConsoleNotifier(path=path)):
            await notifier.send(note(make_alert(title="two\nlines")))
            await notifier.send(note(resolved(make_alert())))
        for text in (out.getvalue(), path.read_text()):
            lines = text.splitlines()
            assert len(lines) == 4
            assert lines[0].startswith("FIRING") and "1 firing, 0 resolved" in lines[0]
            assert "two lines" in lines[1] and "observed=2.4" in lines[1]
            assert lines[2].startswith("RESOLVED") and "fp=fp0001" in lines[3]

    asyncio.run(main())
