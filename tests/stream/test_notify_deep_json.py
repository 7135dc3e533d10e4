"""Deeply nested JSON (issue 16): json.loads raises RecursionError, not ValueError. The
silences topic reader must log, count and skip such a record; the HTTP API must answer
400 with a clear message, never 500."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from stream.alerting.silences import SilenceStore, ack_key, silence_key
from stream.notify.config import parse_config
from stream.notify.service import NotifierService
from stream.notify.web import NotifierAPI
from stream.settings import Settings

DEEP = b"[" * 100_000 + b"]" * 100_000


def test_a_deeply_nested_silences_record_is_logged_counted_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = SilenceStore()
    with caplog.at_level(logging.ERROR, logger="llmwatch.notify"):
        assert store.apply(silence_key("s1"), DEEP).kind == "none"
        assert store.apply(ack_key("fp1"), b'{"a":' * 50_000 + b"1" + b"}" * 50_000).kind == "none"
    assert store.skipped == 2 and store.silences() == []
    assert [r.getMessage() for r in caplog.records] == [
        "silences topic: skipped record 'silence:s1': RecursionError",
        "silences topic: skipped record 'ack:fp1': RecursionError",
    ]


def _post(url: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Authorization": "Bearer t0ken"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_api_answers_400_to_deeply_nested_json() -> None:
    # Only what the handlers touch before the body is refused.
    service: Any = SimpleNamespace(
        settings=SimpleNamespace(api_token=SecretStr("t0ken"), worker_url="")
    )

    async def main() -> list[tuple[int, Any]]:
        runner = web.AppRunner(NotifierAPI(service).app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            body = b"[" * 20_000 + b"]" * 20_000  # under the API's 64 KiB body limit
            return [
                await asyncio.to_thread(_post, f"http://127.0.0.1:{port}{path}", body)
                for path in ("/api/silences", "/api/acks")
            ]
        finally:
            await runner.cleanup()

    assert asyncio.run(main()) == [(400, {"error": "body: not valid JSON"})] * 2


def test_the_notifier_counts_skipped_silence_records(tmp_path: Path) -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:9", state_dir=str(tmp_path))
    config = parse_config(
        {"receivers": [{"name": "c", "type": "console"}], "route": {"receiver": "c"}}
    )
    service = NotifierService(settings, config)  # nothing is started: no broker needed
    service.apply_record(silence_key("s1"), DEEP)
    service.apply_record(silence_key("s2"), b"{not json")
    registry = service.metrics.registry
    assert registry.get_sample_value("llmwatch_notify_silence_records_skipped_total") == 2
    assert service.state.silences() == []
