"""Chaos on the real Apache Kafka 0.9.0.1 broker: a poison message mid-stream, and a
torn engine snapshot before a restart. Run with `make test-kafka09`.

Each scenario prints one JSON line of counts (sent, dead-lettered, lost, duplicated)
so a run's numbers can be quoted.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer
from confluent_kafka import TopicPartition as TP

from schemas.models import DeadLetter
from stream.app import engine_table
from stream.kafka09 import changelog_topic
from tests.integration.k09flow import (
    PARTITIONS,
    WAIT_S,
    check_alerts,
    client,
    create_topics,
    ends,
    paced,
    settings_for,
    split,
    target_fired,
    worker,
)
from tests.integration.kafka09 import Kafka09
from tests.integration.workerkit import (
    MALFORMED,
    covered,
    fleet_events,
    metric_sum,
    publish,
    read_values,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka09]

# The reproducer: a ~2 KB inference event whose model_version nests 1,000 deep
# (it crash-looped the worker: RecursionError outside any try, offset never committed).
POISON = (
    b'{"kind":"inference","ts":"2024-06-03T08:02:00Z","gateway":"gw-us-east",'
    b'"model":"llama-3-8b","request_id":"r-poison","status":"ok","latency_ms":1,'
    b'"model_version":' + b"[" * 1000 + b"]" * 1000 + b"}"
)


def _dead_letters(broker: Kafka09, topic: str) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(v) for v in read_values(client(broker), topic, 2)]


def _paced_with_poison(producer: Any, settings: Any, events: list[dict[str, Any]]) -> None:
    half = len(events) // 2
    paced(producer, settings, events[:half])
    for raw in [POISON, *MALFORMED]:
        producer.produce(settings.topic_inference, key=b"gw-us-east|llama-3-8b", value=raw)
    paced(producer, settings, events[half:])


def test_poison_mid_stream_is_dead_lettered_once_and_nothing_else_is_lost(
    kafka09_fresh: Kafka09, tmp_path: Path, k09_producer: Any
) -> None:
    broker = kafka09_fresh
    settings = settings_for(broker)
    create_topics(broker, settings)
    events = fleet_events()
    producer = k09_producer(broker)
    first = worker(broker, tmp_path, "w1").start()
    again = worker(broker, tmp_path, "w2")
    try:
        first.wait_healthy()
        pacer = threading.Thread(
            target=_paced_with_poison, args=(producer, settings, events), daemon=True
        )
        pacer.start()
        pacer.join(WAIT_S * 3)
        assert not pacer.is_alive() and producer.flush(30) == 0
        marks = ends(broker, settings)
        # wait_for fails at once if the worker exits: it must keep consuming.
        wait_for(lambda: covered([first], marks), WAIT_S, "stream consumed", first)
        wait_for(lambda: target_fired(broker, settings), WAIT_S, "the burst's alert", first)
        accepted = metric_sum(first.port, "llmwatch_events_accepted_total")
        poison = metric_sum(first.port, "llmwatch_poison_messages_total")
        # A restart must not stop on the poison again: its offset was committed.
        first.stop()
        again.start().wait_healthy()
        wait_for(lambda: covered([again], marks), WAIT_S, "consumed after restart", again)
        dead = _dead_letters(broker, settings.topic_deadletter)
        raws = sorted(base64.b64decode(d.raw_b64) for d in dead)
        assert raws == sorted([POISON, *MALFORMED]), "each bad message dead-lettered once"
        poisoned = next(d for d in dead if base64.b64decode(d.raw_b64) == POISON)
        assert poisoned.reason and poisoned.offset is not None
        assert accepted == len(events), "every good event processed exactly once"
        assert metric_sum(again.port, "llmwatch_events_accepted_total") == 0
        check_alerts(broker, settings)  # no duplicate firing, the burst's alert not lost
        counts = {
            "scenario": "poison mid-stream",
            "sent": len(events) + 1 + len(MALFORMED),
            "accepted": accepted,
            "dead_lettered": len(dead),
            "poison_metric": poison,  # 0: the decoder rejects deep nesting without raising
            "lost": len(events) - accepted,
            "duplicated": len(dead) - len(set(raws)),
        }
        print("\n" + json.dumps(counts))
    finally:
        first.kill()
        again.stop()


def _changelog(broker: Kafka09, topic: str, partition: int) -> list[tuple[bytes, bytes | None]]:
    """Every (key, value) on one changelog partition, in order."""
    consumer = Consumer({**client(broker), "group.id": "chaos-reader", "enable.auto.commit": False})
    out: list[tuple[bytes, bytes | None]] = []
    try:
        high = consumer.get_watermark_offsets(TP(topic, partition), timeout=10)[1]
        consumer.assign([TP(topic, partition, OFFSET_BEGINNING)])
        got, deadline = 0, time.monotonic() + 20
        while got < high and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.3):
                if msg.error() is None:
                    key, offset = msg.key(), msg.offset()
                    assert key is not None and offset is not None  # changelog keys are never null
                    out.append((key, msg.value()))
                    got = offset + 1
    finally:
        consumer.close()
    return out


def _manifest(broker: Kafka09, topic: str, partition: int) -> dict[str, Any] | None:
    value = dict(_changelog(broker, topic, partition)).get(f"engine-{partition}".encode())
    return None if value is None else dict(orjson.loads(value))


def _two_generations(broker: Kafka09, topic: str) -> bool:
    found = [_manifest(broker, topic, p) for p in range(PARTITIONS)]
    return all(m is not None and "previous" in m for m in found)


def _tear_newest(broker: Kafka09, producer: Any, topic: str, partition: int) -> dict[str, int]:
    """Overwrite the head of the newest snapshot's first chunk (a torn write: the
    digest no longer matches); returns the offsets the generation before covers."""
    manifest = _manifest(broker, topic, partition)
    assert manifest is not None
    table = dict(_changelog(broker, topic, partition))
    previous = manifest.get("previous", {"offsets": {}})  # none: nothing to fall back to
    newest = f"engine-{partition}@{manifest['generation']}#0".encode()
    chunk = table[newest] or b""
    producer.produce(topic, key=newest, value=bytes(16) + chunk[16:], partition=partition)
    assert producer.flush(30) == 0
    return {str(t): int(o) for t, o in previous["offsets"].items()}


def test_torn_snapshot_then_restart_skips_no_event(
    kafka09_fresh: Kafka09, tmp_path: Path, k09_producer: Any
) -> None:
    broker = kafka09_fresh
    settings = settings_for(broker)
    create_topics(broker, settings)
    before, during, after = split(fleet_events(), 150, 230)
    producer = k09_producer(broker)
    first = worker(broker, tmp_path, "w1").start()
    second = worker(broker, tmp_path, "w2")
    changelog = changelog_topic("llmwatch", engine_table("llmwatch"))
    try:
        first.wait_healthy()
        publish(producer, settings, before)
        assert producer.flush(30) == 0
        marks = ends(broker, settings)
        wait_for(lambda: covered([first], marks), WAIT_S, "phase 1 consumed", first)
        saved = lambda: _two_generations(broker, changelog)  # noqa: E731
        wait_for(saved, WAIT_S, "two snapshot generations per partition", first)
        # Mid-stream kill, so the two kept snapshots cover different offsets.
        start = first.events_in()
        pacer = threading.Thread(target=paced, args=(producer, settings, during), daemon=True)
        pacer.start()
        wait_for(lambda: first.events_in() > start + 600, WAIT_S, "phase 2 flowing", first)
        first.kill()
        pacer.join(WAIT_S)
        assert not pacer.is_alive() and producer.flush(30) == 0
        fallback = {p: _tear_newest(broker, producer, changelog, p) for p in range(PARTITIONS)}
        publish(producer, settings, after)
        assert producer.flush(30) == 0
        marks = ends(broker, settings)
        second.start().wait_healthy()
        wait_for(lambda: covered([second], marks), WAIT_S, "consumed after restart", second)
        health = second.healthz() or {}
        failures = health.get("state_restore_failures", {})
        assert sorted(failures) == [str(p) for p in range(PARTITIONS)], health
        assert all("digest" in why for whys in failures.values() for why in whys)
        assert health.get("offsets_skipped", {}) == {}
        # Nothing skipped: every event after the offsets the fallback snapshots cover
        # was processed again by the restarted worker.
        must = sum(
            end - 1 - fallback[int(tp.rsplit("/", 1)[1])].get(tp.rsplit("/", 1)[0], -1)
            for tp, end in marks.items()
            if end > 0
        )
        processed = second.events_in()
        assert processed >= must, (processed, must, fallback)
        wait_for(lambda: target_fired(broker, settings), WAIT_S, "the burst's alert", second)
        counts = {
            "scenario": "torn snapshot, restart",
            "sent": sum(marks.values()),
            "reprocessed_after_fallback": processed,
            "needed_after_fallback": must,
            "restore_failures": metric_sum(second.port, "llmwatch_state_restore_failures_total"),
            "skipped": max(0, must - processed),
        }
        print("\n" + json.dumps(counts))
    finally:
        first.kill()
        second.stop()
