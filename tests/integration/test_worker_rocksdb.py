"""A worker on the default table store (rocksdb://) saves engine state and resumes it.

Faust's rocksdb store keeps one database per partition and picks it from the
current stream event; the worker saves snapshots from timers and shutdown hooks,
where there is none. This runs a real worker process with rocksdb:// on a private
embedded broker, stops it, and checks a second run restores its engines from the
local databases instead of starting fresh.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from stream.broker import EmbeddedBroker
from stream.settings import Settings
from tests.integration.workerkit import (
    WorkerProc,
    covered,
    fleet_events,
    high_watermarks,
    publish,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def private_broker() -> Iterator[str]:
    # Its own broker: the worker's topic names are fixed and the session broker is shared.
    with EmbeddedBroker() as bootstrap:
        yield bootstrap


def _worker(bootstrap: str, state: Path, log: Path) -> WorkerProc:
    env = {
        **os.environ,
        "LLMWATCH_BOOTSTRAP_SERVERS": bootstrap,
        "LLMWATCH_STORE": "rocksdb://",
        "LLMWATCH_STATE_DIR": str(state),
        "LLMWATCH_SESSION_TIMEOUT_S": "10",
    }
    return WorkerProc(env=env, log=log)


def test_rocksdb_store_saves_and_restores_engines(private_broker: str, tmp_path: Path) -> None:
    settings = Settings(bootstrap_servers=private_broker)
    client = {"bootstrap.servers": private_broker}
    events = [e for e in fleet_events() if e["kind"] == "inference"]
    first, second = events[: len(events) // 2], events[len(events) // 2 :]
    state, log = tmp_path / "state", tmp_path / "worker.log"

    one = _worker(private_broker, state, log).start()
    try:
        one.wait_healthy()
        producer = Producer({**client, "linger.ms": 5})
        publish(producer, settings, first)
        assert producer.flush(10) == 0
        ends = high_watermarks(client, [settings.topic_inference], 4)
        wait_for(lambda: covered([one], ends), 60, "first run consumed", one)
        engines = set(one.healthz()["partitions"])  # type: ignore[index]
        assert engines, one.tail()
    finally:
        one.stop()
    assert one.proc is not None and one.proc.returncode == 0, one.tail()
    text = log.read_text(errors="replace")
    assert "AssertionError" not in text and "Traceback" not in text, one.tail()
    # The snapshots went to the rocksdb databases on disk, not only to the changelog.
    assert any(p.is_dir() for p in state.rglob("*llmwatch-engines*")), sorted(state.rglob("*"))

    two = _worker(private_broker, state, log).start()
    try:
        two.wait_healthy()
        publish(producer, settings, second)  # engines start (and restore) on first use
        assert producer.flush(10) == 0
        ends = high_watermarks(client, [settings.topic_inference], 4)
        wait_for(lambda: covered([two], ends), 60, "second run consumed", two)
        health = two.healthz()
        assert health is not None
        assert health["restore_failed"] == [], health
        assert engines <= set(health["restored"]), (engines, health, two.tail())
    finally:
        two.stop()
    assert two.proc is not None and two.proc.returncode == 0, two.tail()
    assert "Traceback" not in log.read_text(errors="replace"), two.tail()
