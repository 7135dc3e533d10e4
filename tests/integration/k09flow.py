"""Shared steps of the worker tests on Apache Kafka 0.9 (crash, broker restart, scale-out).

The worker gets LLMWATCH_BROKER_API_VERSION=0.9, and every topic (changelog
included) is created up front from ``stream.app.worker_topics``, as a user on
such a broker would (``llmwatch topics --zookeeper ...``).
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from schemas.models import Alert, AlertStatus
from stream.app import worker_topics
from stream.settings import Settings
from tests.integration.kafka09 import Kafka09
from tests.integration.workerkit import (
    WorkerProc,
    assert_dead_letters,
    assert_fired_once,
    high_watermarks,
    is_target,
    publish,
    read_values,
)

PARTITIONS = 2
WAIT_S = 60.0
# librdkafka warns on every client that the 0.9 settings are deprecated; errors only.
QUIET = {"log_level": 3}


def settings_for(broker: Kafka09) -> Settings:
    return Settings(
        bootstrap_servers=broker.bootstrap, broker_api_version="0.9", partitions=PARTITIONS
    )


def create_topics(broker: Kafka09, settings: Settings) -> None:
    specs = worker_topics(settings)
    broker.create_topics([s.name for s in specs if not s.config], partitions=PARTITIONS)
    compact = [s for s in specs if s.config]
    broker.create_topics([s.name for s in compact], PARTITIONS, configs=compact[0].config)


def worker(broker: Kafka09, tmp_path: Path, name: str) -> WorkerProc:
    env = {
        **os.environ,
        "LLMWATCH_BOOTSTRAP_SERVERS": broker.bootstrap,
        "LLMWATCH_BROKER_API_VERSION": "0.9",
        "LLMWATCH_PARTITIONS": str(PARTITIONS),
        "LLMWATCH_STORE": "memory://",
        "LLMWATCH_STATE_DIR": str(tmp_path / f"state-{name}"),
        "LLMWATCH_BATCH_SIZE": "100",
    }
    args = ("--session-timeout", "6", "--checkpoint-interval", "2")
    return WorkerProc(env=env, log=tmp_path / f"{name}.log", args=args)


def client(broker: Kafka09) -> dict[str, Any]:
    return broker.client_config(QUIET)


def alerts(broker: Kafka09, settings: Settings) -> list[Alert]:
    values = read_values(client(broker), settings.topic_alerts, PARTITIONS)
    return [Alert.model_validate_json(v) for v in values]


def ends(broker: Kafka09, settings: Settings) -> dict[str, int]:
    topics = [settings.topic_inference, settings.topic_gpu, settings.topic_feedback]
    return high_watermarks(client(broker), topics, PARTITIONS)


def target_fired(broker: Kafka09, settings: Settings) -> bool:
    return any(is_target(a) and a.status is AlertStatus.FIRING for a in alerts(broker, settings))


def resolved_ids(broker: Kafka09, settings: Settings) -> set[str]:
    return {a.alert_id for a in alerts(broker, settings) if a.status is AlertStatus.RESOLVED}


def split(events: list[dict[str, Any]], *cuts: float) -> list[list[dict[str, Any]]]:
    """Events by simulated time (seconds since the first event) at the given cuts."""
    t0 = datetime.fromisoformat(events[0]["ts"])
    parts: list[list[dict[str, Any]]] = [[] for _ in range(len(cuts) + 1)]
    for ev in events:
        offset = (datetime.fromisoformat(ev["ts"]) - t0).total_seconds()
        parts[sum(offset >= c for c in cuts)].append(ev)
    return parts


def check_dead_letters(broker: Kafka09, settings: Settings) -> None:
    values = read_values(client(broker), settings.topic_deadletter, PARTITIONS)
    assert_dead_letters(values, settings.topic_inference)


def check_alerts(broker: Kafka09, settings: Settings) -> list[Alert]:
    seen = alerts(broker, settings)
    assert_fired_once(seen)
    return seen


def paced(producer: Producer, settings: Settings, events: list[dict[str, Any]]) -> None:
    # Spread over a few seconds so a kill lands mid-stream; pacing, not waiting.
    step = 40
    for i in range(0, len(events), step):
        publish(producer, settings, events[i : i + step])
        producer.flush(10)
        time.sleep(0.05)
