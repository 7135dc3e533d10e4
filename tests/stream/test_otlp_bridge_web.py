"""The bridge's /healthz and /metrics: a real HTTP server over a real bridge's state."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import pytest

from connectors.otlp_bridge import BridgeStats, OtlpBridge
from stream.otlp_bridge_web import bridge_registry, serve


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_healthz_is_200_while_the_loop_runs_and_503_before_and_after(
    embedded_broker: str, topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge = OtlpBridge({"bootstrap.servers": embedded_broker}, source_topic=topic_name)
    server = serve(bridge_registry(lambda: bridge.stats), lambda: bridge.running, 0, "127.0.0.1")
    port = server.server_address[1]
    halt = threading.Event()
    during: list[int] = []

    def one_batch(*_: object, **__: object) -> int:
        during.append(_get(port, "/healthz")[0])  # from inside the running loop
        halt.set()
        return 0

    try:
        assert _get(port, "/healthz")[0] == 503  # not started
        monkeypatch.setattr(bridge, "poll_once", one_batch)
        bridge.run(stop=halt)
        assert during == [200]
        assert _get(port, "/healthz") == (503, "stopped\n")
        assert _get(port, "/nope")[0] == 404
    finally:
        server.shutdown()
        bridge.close()


def test_metrics_read_the_stats_at_scrape_time() -> None:
    stats = BridgeStats(messages=5, spans=9, events=6, skipped=1, invalid_spans=2)
    stats.dead_lettered, stats.produce_failures, stats.last_commit = 1, 3, 1.7e9
    server = serve(bridge_registry(lambda: stats), lambda: True, 0, "127.0.0.1")
    try:
        status, body = _get(server.server_address[1], "/metrics")
        stats.events = 7  # the next scrape sees it: one home for the counts
        after = _get(server.server_address[1], "/metrics")[1]
    finally:
        server.shutdown()
    assert status == 200
    for line in (
        'llmwatch_otlp_messages_total{outcome="published"} 4.0',
        'llmwatch_otlp_messages_total{outcome="dead_lettered"} 1.0',
        'llmwatch_otlp_spans_total{outcome="published"} 6.0',
        'llmwatch_otlp_spans_total{outcome="skipped_non_genai"} 1.0',
        'llmwatch_otlp_spans_total{outcome="invalid"} 2.0',
        "llmwatch_otlp_events_published_total 6.0",
        "llmwatch_otlp_produce_failures_total 3.0",
        "llmwatch_otlp_last_commit_timestamp_seconds 1.7e+09",
    ):
        assert line in body.splitlines(), (line, body)
    assert "llmwatch_otlp_events_published_total 7.0" in after
    assert "_created" not in body
    # Lag is shown once a fetch has told the bridge where the topic ends, not before.
    assert "llmwatch_otlp_consumer_lag_messages" not in body


def test_lag_shows_once_known() -> None:
    stats = BridgeStats(lag=42)
    server = serve(bridge_registry(lambda: stats), lambda: True, 0, "127.0.0.1")
    try:
        body = _get(server.server_address[1], "/metrics")[1]
    finally:
        server.shutdown()
    assert "llmwatch_otlp_consumer_lag_messages 42.0" in body.splitlines()
