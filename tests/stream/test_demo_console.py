"""The demo's alert console: one readable line per alert, read live from the alerts topic."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from confluent_kafka import Producer

from schemas.models import Alert, dump_json
from stream.cli import main
from stream.commands.alerts import AlertWatcher, Seen
from stream.replay.console import alert_line


def _alert(**overrides: Any) -> Alert:
    data: dict[str, Any] = {
        "alert_id": "a-1",
        "fingerprint": "fp0001",
        "status": "firing",
        "severity": "error",
        "detector": "error_rate",
        "title": "error_rate.error: gateway=gw-a, model=m1",
        "summary": "errors up",
        "labels": {"gateway": "gw-a", "model": "m1", "host": "node-7", "detector": "error_rate"},
        "observed": 0.2,
        "expected": 0.01,
        "score": 0.9,
        "starts_at": "2024-06-03T08:05:00Z",
    }
    data.update(overrides)
    return Alert.model_validate(data)


def test_alert_line_is_one_line_and_does_not_repeat_the_titles_labels() -> None:
    line = alert_line(_alert())
    assert line.startswith("2024-06-03 08:05:00  FIRING    error")
    assert line.count("gw-a") == 1  # named in the title, not repeated
    assert "[host=node-7]" in line  # the one label the title leaves out
    assert "detector=" not in line  # the detector is in the title already
    assert "observed 0.2 vs expected 0.01" in line
    resolved = alert_line(
        _alert(status="resolved", ends_at="2024-06-03T08:09:00Z", title="a\nb\rc")
    )
    assert "\n" not in resolved and "\r" not in resolved
    assert resolved.startswith("2024-06-03 08:09:00  RESOLVED")


def test_alert_watcher_delivers_alerts_and_counts_unreadable(
    embedded_broker: str, topic_name: str
) -> None:
    got: list[Seen] = []
    arrived = threading.Event()

    def on_alert(s: Seen) -> None:
        got.append(s)
        if len(got) == 2:
            arrived.set()

    producer = Producer({"bootstrap.servers": embedded_broker})
    producer.list_topics(topic=topic_name, timeout=10)  # auto-create before subscribing
    watcher = AlertWatcher({"bootstrap.servers": embedded_broker}, topic_name, on_alert)
    try:
        assert watcher.start()
        first, second = _alert(), _alert(alert_id="a-2", status="resolved")
        for value in (dump_json(first), b"{not an alert", dump_json(second)):
            producer.produce(topic_name, key=b"fp0001", value=value)
        assert producer.flush(10) == 0
        assert arrived.wait(15), f"got {len(got)} alerts"
    finally:
        watcher.stop()
    assert [s.alert.alert_id for s in got] == ["a-1", "a-2"]
    assert watcher.unreadable == 1
    assert all(s.received <= time.monotonic() for s in got)


def test_alerts_tail_prints_one_line_each_and_stops_at_max(
    embedded_broker: str,
    topic_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    producer = Producer({"bootstrap.servers": embedded_broker})
    for value in (dump_json(_alert()), b"{not an alert", dump_json(_alert(alert_id="a-3"))):
        producer.produce(topic_name, key=b"fp0001", value=value)
    assert producer.flush(10) == 0
    monkeypatch.setenv("LLMWATCH_BOOTSTRAP_SERVERS", embedded_broker)
    monkeypatch.setenv("LLMWATCH_TOPIC_ALERTS", topic_name)
    assert main(["alerts", "tail", "--from-beginning", "--max", "2", "--duration", "20s"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines
    assert lines[0] == alert_line(_alert())
    assert lines[1].startswith("(unreadable alert: ")
