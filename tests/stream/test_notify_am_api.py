"""The notifier speaks Alertmanager v2: responses valid against the published spec, and
the real amtool (Debian's prometheus-alertmanager) queries alerts and adds, lists and
expires silences against llmwatch."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from pydantic import SecretStr

from tests.connectors.notify_fakes import FakeWebhook, make_alert
from tests.connectors.notify_harness import (
    API_TOKEN,
    WEBHOOK_PATH,
    config_for,
    publish,
    running,
    settings_for,
)

SPEC = Path("/work/shared/specs/alertmanager-api-v2.openapi.yaml")


def _validator(definition: str) -> jsonschema.protocols.Validator:
    spec = yaml.safe_load(SPEC.read_text())
    schema = {"$ref": f"#/definitions/{definition}", "definitions": spec["definitions"]}
    return jsonschema.Draft4Validator(schema)


def _valid(body: Any, definition: str) -> None:
    errors = [e.message for e in _validator(definition).iter_errors(body)]
    assert errors == [], f"{definition}: {errors[:3]}"


def _amtool(url: str, http_config: Path, *args: str) -> str:
    path = shutil.which("amtool")
    assert path is not None, "amtool is not installed: run scripts/deploy-check-deps.sh"
    out = subprocess.run(
        [path, f"--alertmanager.url={url}", f"--http.config.file={http_config}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_amtool_and_the_spec_against_llmwatch(embedded_broker: str, tmp_path: Path) -> None:
    http_config = tmp_path / "amtool-http.yml"
    http_config.write_text(f"authorization:\n  type: Bearer\n  credentials: {API_TOKEN}\n")

    async def main() -> None:
        hook = FakeWebhook()
        async with hook.running() as hook_url:
            settings = settings_for(
                embedded_broker, tmp_path / "state", webhook_url=SecretStr(hook_url + WEBHOOK_PATH)
            )
            config = config_for(
                [{"name": "hook", "type": "webhook"}],
                {"receiver": "hook", "group_by": ["alertname"]},
            )
            one = make_alert(alert_id="a-1", fingerprint="fp1", labels={"model": "m1"})
            two = make_alert(alert_id="a-2", fingerprint="fp2", labels={"model": "m2"})
            publish(embedded_broker, settings.topic_alerts, [one, two])
            async with running(settings, config) as svc:
                await svc.settled(2)
                url = svc.url
                status, body = await svc.get("/api/v2/status")
                assert status == 200
                _valid(body, "alertmanagerStatus")
                loop = asyncio.get_running_loop()

                def amtool(*args: str) -> str:
                    return _amtool(url, http_config, *args)

                listed = json.loads(
                    await loop.run_in_executor(None, amtool, "alert", "query", "-o", "json")
                )
                assert sorted(a["labels"]["model"] for a in listed) == ["m1", "m2"]
                _, alerts = await svc.get("/api/v2/alerts")
                _valid(alerts, "gettableAlerts")
                _, groups = await svc.get("/api/v2/alerts/groups")
                _valid(groups, "alertGroups")
                (group,) = groups
                assert group["receiver"] == {"name": "hook"} and len(group["alerts"]) == 2
                # amtool adds a silence; llmwatch's own API and the v2 one both see it.
                sid = (
                    await loop.run_in_executor(
                        None,
                        amtool,
                        "silence",
                        "add",
                        "model=m2",
                        "--comment=maintenance",
                        "--author=oncall",
                        "--duration=1h",
                    )
                ).strip()
                _, mine = await svc.get("/api/silences")
                assert [s["id"] for s in mine] == [sid] and mine[0]["created_by"] == "oncall"
                _, alerts = await svc.get("/api/v2/alerts")
                held = {a["labels"]["model"]: a["status"] for a in alerts}
                assert held["m2"] == {
                    "state": "suppressed",
                    "silencedBy": [sid],
                    "inhibitedBy": [],
                    "mutedBy": [],
                }
                active = json.loads(
                    await loop.run_in_executor(None, amtool, "alert", "query", "-o", "json")
                )
                assert [a["labels"]["model"] for a in active] == ["m1"]  # amtool hides silenced
                silences = json.loads(
                    await loop.run_in_executor(None, amtool, "silence", "query", "-o", "json")
                )
                assert [s["id"] for s in silences] == [sid]
                _, v2 = await svc.get("/api/v2/silences")
                _valid(v2, "gettableSilences")
                _, one_silence = await svc.get(f"/api/v2/silence/{sid}")
                _valid(one_silence, "gettableSilence")
                assert one_silence["matchers"] == [
                    {"name": "model", "value": "m2", "isRegex": False, "isEqual": True}
                ]
                await loop.run_in_executor(None, amtool, "silence", "expire", sid)
                _, ended = await svc.get(f"/api/v2/silence/{sid}")
                assert ended["status"]["state"] == "expired"
                # Writes need the token, as on /api/*; a bad filter is a 400, not a 500.
                status, _ = await svc.post("/api/v2/silences", {}, headers={})
                assert status == 401
                status, text = await svc.get("/api/v2/alerts?filter=model%3D~%22(%22")
                assert status == 400 and "regular expression" in text

    asyncio.run(main())
