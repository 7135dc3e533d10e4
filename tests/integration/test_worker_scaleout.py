"""Two ``llmwatch worker`` processes in one consumer group: share, then hand over.

They split the partitions (each runs engines and consumes); one is killed with
SIGKILL mid-stream and the other takes over its partitions with their state,
restored from the changelog: open alerts stay open, nothing fires twice, nothing
is lost.

This runs on Apache Kafka 0.9 (kafka09_fresh), not on the embedded broker: the
librdkafka mock cluster (confluent-kafka 2.16 / librdkafka 2.16.0,
rdkafka_mock_cgrp.c) completes a classic-protocol SyncGroup as soon as the
leader's request carries assignments for every member, without waiting for the
followers' own SyncGroup requests, and moves the group to Up. A follower whose
SyncGroup arrives after the leader's (usual with aiokafka, whose leader computes
Faust's assignment quickly) is refused with INVALID_REQUEST (42) because the mock
accepts SyncGroup only while Syncing; it never gets its assignment, rejoins,
and the same race repeats. librdkafka's own consumers rarely lose that race,
so the mock's tests do not show it.
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
from tests.integration.workerkit import (
    WorkerProc,
    covered,
    fleet_events,
    metric_sum,
    publish,
    publish_malformed,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka09]


def _partitions(w: WorkerProc) -> set[int]:
    health = w.healthz()
    return set(health["partitions"]) if health else set()


def _restored(w: WorkerProc) -> set[int]:
    health = w.healthz()
    return set(health["restored"]) if health else set()


def _saved(w: WorkerProc) -> set[int]:
    health = w.healthz()
    return set(health["saved"]) if health else set()


def test_two_workers_share_partitions_and_survive_a_kill(
    kafka09_fresh: Kafka09, tmp_path: Path, k09_producer: Any
) -> None:
    broker = kafka09_fresh
    settings = settings_for(broker)
    create_topics(broker, settings)
    before, during, after = split(fleet_events(), 180, 230)
    producer = k09_producer(broker)
    one = worker(broker, tmp_path, "one").start()
    two = worker(broker, tmp_path, "two").start()
    both = (one, two)
    try:
        one.wait_healthy()
        two.wait_healthy()
        # Publish once the group has settled with both, so both get events.
        wait_for(lambda: one.assigned() and two.assigned(), WAIT_S, "both assigned", *both)
        assert not one.assigned() & two.assigned(), (one.healthz(), two.healthz())
        publish(producer, settings, before)
        publish_malformed(producer, settings)
        assert producer.flush(30) == 0
        marks = ends(broker, settings)
        wait_for(lambda: covered(both, marks), WAIT_S, "phase 1 consumed", *both)
        # Both consume and run engines, on disjoint partitions.
        wait_for(lambda: _partitions(one) and _partitions(two), WAIT_S, "both own engines", *both)
        assert not _partitions(one) & _partitions(two), (one.healthz(), two.healthz())
        assert one.events_in() > 0 and two.events_in() > 0, (one.events_in(), two.events_in())
        wait_for(lambda: target_fired(broker, settings), WAIT_S, "the burst's alert", *both)

        start_count = one.events_in()
        pacer = threading.Thread(target=paced, args=(producer, settings, during), daemon=True)
        pacer.start()
        # Phase 2 puts only ~100 events on one's partitions in all (PARTITIONS=2, model
        # keys), so a few dozen prove it is flowing while the pacer still runs.
        wait_for(lambda: one.events_in() >= start_count + 20, WAIT_S, "phase 2 flowing", one)
        # Kill once every engine of one's has been saved (one started less than a
        # checkpoint interval ago would rightly start fresh on the survivor).
        wait_for(lambda: _partitions(one) <= _saved(one), WAIT_S, "one's engines saved", one)
        taken = _saved(one)
        open_at_kill = {a.alert_id for w in both for a in w.get_alerts()}
        one.kill()
        pacer.join(WAIT_S)
        assert not pacer.is_alive() and producer.flush(30) == 0
        marks = ends(broker, settings)
        # The survivor reaches the end of every partition, the dead one's included,
        # resuming them from their snapshots.
        wait_for(lambda: covered([two], marks), 90, "survivor took over", two)
        # Its manifests cover those offsets before its table recovery has finished;
        # once it has, every engine the dead one saved is restored (not re-learnt),
        # whether or not new events reached its partition since.
        wait_for(lambda: taken <= _restored(two), WAIT_S, "dead worker's engines restored", two)

        publish(producer, settings, after)
        assert producer.flush(30) == 0
        marks = ends(broker, settings)
        wait_for(lambda: covered([two], marks), WAIT_S, "phase 3 consumed", two)
        still_open = open_at_kill - resolved_ids(broker, settings)
        assert still_open, "nothing was open at the kill: the test proves little"
        assert still_open <= {a.alert_id for a in two.get_alerts()}
        seen = check_alerts(broker, settings)
        check_dead_letters(broker, settings)
        # A source guard re-seek (stream.worker.source_guard) shows a takeover that stalled.
        reseeks = metric_sum(two.port, "llmwatch_source_reseeks_total")
        print(f"\nworker one owned {sorted(taken)}; {len(seen)} alert transitions; ", end="")
        print(f"survivor's source re-seeks: {reseeks:.0f}")
    finally:
        one.kill()
        two.stop()
