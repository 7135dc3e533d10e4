"""The alertmanager receiver against the real Alertmanager (Debian's prometheus-alertmanager,
installed by scripts/deploy-check-deps.sh), started by the test: alerts arrive and are
grouped, an Alertmanager silence (made with the real amtool) holds one, a resend keeps
a firing alert alive, a resolve ends it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.notify import AlertmanagerConfig, AlertmanagerNotifier, Outcome
from tests.connectors.notify_fakes import FakeClock, make_alert, note, resolved

AM_CONFIG = """
route:
  receiver: "null"
  group_by: [alertname]
  group_wait: 1h
receivers:
  - name: "null"
"""


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} is not installed: run scripts/deploy-check-deps.sh"
    return path


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _until(check: Any, what: str, timeout_s: float = 20.0) -> Any:
    """Poll another process until ``check()`` is truthy (a bound, not a timing)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            got = check()
        except OSError:
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # waiting on a child process's HTTP port: no clock to inject


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "am.yml"
    config.write_text(AM_CONFIG)
    port = _port()
    log = (tmp_path / "am.log").open("wb")
    proc = subprocess.Popen(
        [
            _tool("prometheus-alertmanager"),
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # one instance, no gossip port
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: _get(f"{url}/api/v2/status"), "Alertmanager to start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _by_gateway(url: str) -> dict[str, dict[str, Any]]:
    return {a["labels"]["gateway"]: a for a in _get(f"{url}/api/v2/alerts")}


def test_alerts_arrive_group_get_silenced_resend_and_resolve(alertmanager: str) -> None:
    url = alertmanager
    clock = FakeClock(start=time.time())
    notifier = AlertmanagerNotifier(
        "am", AlertmanagerConfig(url=SecretStr(url), resend_s=60), clock=clock
    )
    one = make_alert(labels={"model": "m", "gateway": "g1"}, severity="critical")
    two = make_alert(alert_id="a-2", fingerprint="fp2", labels={"model": "m", "gateway": "g2"})

    async def send(*alerts: Any, **kw: Any) -> None:
        result = await notifier.send(note(*alerts, **kw))
        assert result.outcome is Outcome.SENT, result.detail

    async def main() -> None:
        await send(one, two)
        got = _until(lambda: len(_by_gateway(url)) == 2 and _by_gateway(url), "both alerts")
        assert {g: a["status"]["state"] for g, a in got.items()} == {"g1": "active", "g2": "active"}
        assert got["g1"]["labels"]["severity"] == "critical"
        assert got["g1"]["labels"]["alertname"] == one.title
        assert got["g1"]["annotations"]["runbook_url"] == "https://runbooks.example/latency"
        assert got["g1"]["generatorURL"] == "https://grafana.example/d/llm"
        # Alertmanager grouped them by alertname: one group of two.
        (group,) = _get(f"{url}/api/v2/alerts/groups")
        assert group["labels"] == {"alertname": one.title} and len(group["alerts"]) == 2
        # An Alertmanager silence, made with the real amtool, holds g2.
        out = subprocess.run(
            [
                _tool("amtool"),
                f"--alertmanager.url={url}",
                "silence",
                "add",
                "gateway=g2",
                "--comment=maintenance",
                "--author=oncall",
                "--duration=1h",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        silence_id = out.stdout.strip()
        held = _until(
            lambda: _by_gateway(url)["g2"]["status"]["state"] == "suppressed" and _by_gateway(url),
            "the silence to hold g2",
        )
        assert held["g2"]["status"]["silencedBy"] == [silence_id]
        assert held["g1"]["status"]["state"] == "active"
        # Resend while firing: two minutes on, endsAt moves two minutes on.
        first_end = dt.datetime.fromisoformat(held["g1"]["endsAt"].replace("Z", "+00:00"))
        clock.t += 120.0
        await send(one, two, reason="repeat", sequence=1)
        moved = _until(
            lambda: (
                (
                    dt.datetime.fromisoformat(
                        _by_gateway(url)["g1"]["endsAt"].replace("Z", "+00:00")
                    )
                    - first_end
                ).total_seconds()
                >= 119
            ),
            "endsAt to move with the resend",
        )
        assert moved
        # The resolve ends g1 (its endsAt is in the past): Alertmanager drops it.
        done = resolved(one).model_copy(
            update={"ends_at": dt.datetime.fromtimestamp(time.time() - 1, dt.UTC)}
        )
        await send(done, two, reason="update")
        left = _until(lambda: set(_by_gateway(url)) == {"g2"} and _by_gateway(url), "g1 resolved")
        assert left["g2"]["status"]["state"] == "suppressed"
        await notifier.close()

    asyncio.run(main())


def test_the_body_is_alertmanagers_postable_alerts() -> None:
    clock = FakeClock(start=1_800_000_000.0)
    notifier = AlertmanagerNotifier(
        "am", AlertmanagerConfig(url=SecretStr("http://x")), clock=clock
    )
    firing, gone = make_alert(), resolved(make_alert(alert_id="a-9", fingerprint="fp9"))
    body = notifier.body(note(firing, gone))
    assert [sorted(b) for b in body] == [
        ["annotations", "endsAt", "generatorURL", "labels", "startsAt"]
    ] * 2
    assert body[0]["endsAt"] == "2027-01-15T08:04:00Z"  # now + 4 x resend_s (60 s)
    assert body[1]["endsAt"] == "2024-05-01T13:00:00Z"  # the real end
    assert body[0]["labels"]["severity"] == "critical"
