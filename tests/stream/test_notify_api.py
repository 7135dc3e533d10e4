"""The notifier's HTTP API and the CLI on top of it: auth, validation, silences, acks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from stream.cli import main as cli
from tests.connectors.notify_fakes import make_alert
from tests.connectors.notify_harness import (
    API_TOKEN,
    config_for,
    publish,
    running,
    settings_for,
)

SILENCE = {"matchers": ['model="m1"'], "duration": "1h", "created_by": "bob"}


def _console(tmp_path: Path) -> Any:
    return config_for(
        [{"name": "console", "type": "console", "path": str(tmp_path / "console.log")}],
        {"receiver": "console"},
    )


def test_writes_need_the_token_and_reads_do_not(embedded_broker: str, tmp_path: Path) -> None:
    async def main() -> None:
        settings = settings_for(embedded_broker, tmp_path)
        async with running(settings, _console(tmp_path)) as svc:
            assert (await svc.post("/api/silences", SILENCE, headers={}))[0] == 401
            wrong = {"Authorization": "Bearer nope"}
            assert (await svc.post("/api/silences", SILENCE, headers=wrong))[0] == 401
            basic = {"Authorization": f"Basic {API_TOKEN}"}
            assert (await svc.post("/api/silences", SILENCE, headers=basic))[0] == 401
            assert (await svc.delete("/api/silences/sil-x", headers={}))[0] == 401
            assert (await svc.post("/api/acks", {"fingerprint": "f"}, headers={}))[0] == 401
            status, sil = await svc.post("/api/silences", SILENCE)
            assert status == 201 and sil["matchers"] == ['model="m1"']
            for path in ("/api/silences", "/api/acks", "/api/alerts", "/healthz"):
                status, _ = await svc.get(path)
                assert status == 200, path

    asyncio.run(main())


def test_without_a_token_every_write_is_refused(embedded_broker: str, tmp_path: Path) -> None:
    async def main() -> None:
        settings = settings_for(embedded_broker, tmp_path, api_token=None)
        async with running(settings, _console(tmp_path)) as svc:
            status, body = await svc.post("/api/silences", SILENCE)
            assert status == 403 and "LLMWATCH_API_TOKEN" in body["error"]
            assert (await svc.delete("/api/silences/sil-x"))[0] == 403
            assert (await svc.get("/api/silences")) == (200, [])

    asyncio.run(main())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SILENCE, "matchers": []}, "matchers"),
        ({**SILENCE, "matchers": ["no operator"]}, "matchers.0"),
        ({**SILENCE, "matchers": ['x=~"("']}, "matchers.0"),
        ({**SILENCE, "created_by": ""}, "created_by"),
        ({**SILENCE, "duration": "soon"}, "duration"),
        ({"matchers": ['a="b"'], "created_by": "x"}, "ends_at"),
        ({**SILENCE, "ends_at": "2001-01-01T00:00:00Z", "duration": None}, "ends_at"),
        ({**SILENCE, "colour": "red"}, "colour"),
    ],
)
def test_a_bad_silence_is_a_400_naming_the_field(
    embedded_broker: str, tmp_path: Path, body: dict[str, Any], field: str
) -> None:
    async def main() -> None:
        settings = settings_for(embedded_broker, tmp_path)
        async with running(settings, _console(tmp_path)) as svc:
            status, answer = await svc.post("/api/silences", body)
            assert status == 400
            assert answer["error"].startswith(f"{field}:"), answer
            assert (await svc.get("/api/silences"))[1] == []

    asyncio.run(main())


def test_ack_of_an_unknown_fingerprint_is_a_404_and_bad_bodies_a_400(
    embedded_broker: str, tmp_path: Path
) -> None:
    async def main() -> None:
        settings = settings_for(embedded_broker, tmp_path)
        async with running(settings, _console(tmp_path)) as svc:
            status, body = await svc.post("/api/acks", {"fingerprint": "nope", "by": "a"})
            assert status == 404 and body["error"].startswith("fingerprint:")
            status, body = await svc.post("/api/acks", {"fingerprint": "f", "by": ""})
            assert status == 400 and body["error"].startswith("by:")
            bad = {"fingerprint": "f", "by": "a", "expires_in": "-1h"}
            status, body = await svc.post("/api/acks", bad)
            assert status == 400 and body["error"].startswith("expires_in:")
            async with svc.http.post(
                f"{svc.url}/api/acks", data=b"{not json", headers=svc.auth
            ) as resp:
                assert resp.status == 400 and "JSON" in (await resp.json())["error"]

    asyncio.run(main())


def test_cli_silence_add_list_expire_and_ack(
    embedded_broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("LLMWATCH_API_TOKEN", API_TOKEN)

    async def main() -> None:
        settings = settings_for(embedded_broker, tmp_path)
        async with running(settings, _console(tmp_path)) as svc:
            loop = asyncio.get_running_loop()

            async def run(*argv: str) -> int:
                code: int = await loop.run_in_executor(None, cli, [*argv, "--url", svc.url])
                return code

            add = ("silence", "add", 'model="m1"', "--duration", "30m", "--comment", "deploy")
            assert await run(*add, "--author", "carol") == 0
            sid = capsys.readouterr().out.split()[0]
            assert sid.startswith("sil-")
            assert await run("silence", "list") == 0
            listed = capsys.readouterr().out
            assert sid in listed and "active" in listed and "carol: deploy" in listed
            assert await run("silence", "expire", sid) == 0
            assert "expired" in capsys.readouterr().out
            assert await run("silence", "list") == 0
            assert capsys.readouterr().out == ""
            publish(embedded_broker, settings.topic_alerts, [make_alert(fingerprint="fpcli")])
            await svc.settled(1)
            assert await run("ack", "fpcli", "--comment", "mine", "--expires", "2h") == 0
            assert "acknowledged fpcli (a-1)" in capsys.readouterr().out
            assert [a["comment"] for a in (await svc.get("/api/acks"))[1]] == ["mine"]
            # A refused call is an error message and exit code 2, not a traceback.
            monkeypatch.setenv("LLMWATCH_API_TOKEN", "wrong-token")
            assert await run("silence", "expire", sid) == 2
            err = capsys.readouterr().err
            assert "HTTP 401" in err and "wrong-token" not in err

    asyncio.run(main())
