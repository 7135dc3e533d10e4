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
from stream.notify.kafka_io import _apply_one
from stream.notify.service import NotifierService
from stream.notify.shared import SharedState
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


def test_a_deeply_nested_replica_record_is_logged_counted_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The other replicas' ledger and Slack records ride the same compacted topic: a
    # RecursionError there stopped every start-up (HA, added after the silences fix).
    shared = SharedState(publish=lambda key, value: None)
    with caplog.at_level(logging.ERROR, logger="llmwatch.notify"):
        shared.apply("ledger:k1", DEEP)
        shared.apply("slack:r|g", DEEP)
        shared.apply("ledger:k2", b'{"outcome": "delivered", "at": 5.0}')
    assert shared.skipped == 2 and shared.messages == {}
    assert shared.ledger == {"k2": ("delivered", 5.0)}
    assert "skipped record 'ledger:k1': RecursionError" in caplog.text


def test_a_record_that_raises_anything_does_not_stop_the_topic_reader(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    def apply(key: str, value: bytes | None) -> None:
        if key == "bad":
            raise RuntimeError("a bug in a parser")
        seen.append(key)

    with caplog.at_level(logging.ERROR, logger="llmwatch.notify"):
        for key in ("a", "bad", "b"):
            _apply_one(apply, key, b"{}")
    assert seen == ["a", "b"]
    assert "record 'bad' could not be applied" in caplog.text


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
