"""The real ``llmwatch worker`` against Apache Kafka 0.9.0.1: detect, crash, restart.

Run with the separate venv (aiokafka 0.12.0): `make test-kafka09`. Helpers and
the worker's 0.9 setup are in k09flow.py; the event stream is in workerkit.py.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.k09flow import (
    WAIT_S,
    check_alerts,
    check_dead_letters,
    create_topics,
    ends,
    paced,
    resolved_ids,
    settings_for,
    split,
    target_fired,
    worker,
)
from tests.integration.kafka09 import Kafka09
from tests.integration.workerkit import covered, fleet_events, publish, publish_malformed, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.kafka09]


def _restored(w: Any) -> set[int]:
    health = w.healthz()
    return set(health["restored"]) if health else set()


def _all_saved(w: Any) -> bool:
    health = w.healthz()
    return bool(health) and set(health["partitions"]) <= set(health["saved"])


def test_worker_survives_sigkill_mid_stream(
    kafka09: Kafka09, tmp_path: Path, k09_producer: Any
) -> None:
    settings = settings_for(kafka09)
    create_topics(kafka09, settings)
    before, during, after = split(fleet_events(), 180, 230)
    producer = k09_producer(kafka09)
    first = worker(kafka09, tmp_path, "w1").start()
    second = worker(kafka09, tmp_path, "w2")
    try:
        first.wait_healthy()
        publish(producer, settings, before)
        publish_malformed(producer, settings)
        assert producer.flush(30) == 0
        marks = ends(kafka09, settings)
        wait_for(lambda: covered([first], marks), WAIT_S, "phase 1 consumed", first)
        wait_for(lambda: target_fired(kafka09, settings), WAIT_S, "the burst's alert", first)

        # Mid-stream: a paced producer keeps publishing while the worker is killed.
        start_count = first.events_in()
        pacer = threading.Thread(target=paced, args=(producer, settings, during), daemon=True)
        pacer.start()
        wait_for(lambda: first.events_in() > start_count + 200, WAIT_S, "phase 2 flowing", first)
        # Kill only once every engine has been saved: one started less than a checkpoint
        # interval ago would (rightly) start fresh, which is not what this test checks.
        wait_for(lambda: _all_saved(first), WAIT_S, "every engine saved", first)
        open_before = {a.alert_id for a in first.get_alerts()}
        health = first.healthz()
        engines_before = set(health["saved"]) if health else set()
        first.kill()
        second.start()
        pacer.join(WAIT_S)
        assert not pacer.is_alive() and producer.flush(30) == 0
        second.wait_healthy()
        marks = ends(kafka09, settings)
        wait_for(lambda: covered([second], marks), WAIT_S, "phase 2 consumed", second)

        # State restored, not re-learnt: the engines resumed from their snapshots (once
        # table recovery is done: the manifests cover the offsets before it is) and the
        # alerts open at the kill are still open (unless the stream resolved them).
        wait_for(lambda: _restored(second) == engines_before, WAIT_S, "engines restored", second)
        still_open = open_before - resolved_ids(kafka09, settings)
        assert still_open, "nothing was open at the kill: the test proves little"
        assert still_open <= {a.alert_id for a in second.get_alerts()}

        publish(producer, settings, after)
        assert producer.flush(30) == 0
        marks = ends(kafka09, settings)
        wait_for(lambda: covered([second], marks), WAIT_S, "phase 3 consumed", second)
        seen = check_alerts(kafka09, settings)  # no duplicate firing, none lost
        check_dead_letters(kafka09, settings)  # exactly once each, despite the replay
        print(f"\n{len(seen)} alert transitions; open at the kill: {sorted(open_before)}")
    finally:
        first.kill()
        second.stop()


def test_worker_rides_out_broker_restart(
    kafka09_fresh: Kafka09, tmp_path: Path, k09_producer: Any
) -> None:
    broker = kafka09_fresh
    settings = settings_for(broker)
    create_topics(broker, settings)
    before, after = split(fleet_events(), 180)
    producer = k09_producer(broker)
    proc = worker(broker, tmp_path, "w").start()
    try:
        proc.wait_healthy()
        publish(producer, settings, before)
        publish_malformed(producer, settings)
        assert producer.flush(30) == 0
        marks = ends(broker, settings)
        wait_for(lambda: covered([proc], marks), WAIT_S, "phase 1 consumed", proc)
        pid = proc.proc.pid if proc.proc else None

        broker.stop()
        # Published while the broker is down: the producer holds them until it is back.
        publish(producer, settings, after)
        broker.start()
        assert producer.flush(60) == 0
        marks = ends(broker, settings)
        wait_for(lambda: covered([proc], marks), 90, "consumed after broker restart", proc)
        assert proc.alive() and proc.proc is not None and proc.proc.pid == pid
        check_alerts(broker, settings)
        check_dead_letters(broker, settings)
    finally:
        proc.stop()
