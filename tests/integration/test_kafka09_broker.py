"""End to end against a real Apache Kafka 0.9.0.1 broker (see conftest.py, kafka09.py).

Run with the separate venv (aiokafka 0.12.0): `make test-kafka09`.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    Message,
    Producer,
)
from confluent_kafka import TopicPartition as TP

from tests.integration.kafka09 import Kafka09, terminate_group

pytestmark = [pytest.mark.integration, pytest.mark.kafka09]

POLL_S = 0.5
DEADLINE_S = 45.0


def produce(broker: Kafka09, topic: str, records: list[tuple[str, bytes]]) -> dict[int, int]:
    """Produce keyed records with acks=all; return per-partition counts of delivered ones."""
    delivered: Counter[int] = Counter()
    errors: list[str] = []

    def on_delivery(err: object, msg: object) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            delivered[msg.partition()] += 1  # type: ignore[attr-defined]

    producer = Producer(broker.client_config({"acks": "all", "linger.ms": 5}))
    for key, value in records:
        producer.produce(topic, key=key.encode(), value=value, on_delivery=on_delivery)
        producer.poll(0)
    left = producer.flush(DEADLINE_S)
    assert left == 0 and not errors, f"{left} undelivered, errors: {errors[:5]}"
    assert sum(delivered.values()) == len(records)
    return dict(delivered)


Row = tuple[str, str, int]


def _bytes(data: bytes | None) -> bytes:
    """A key or value that the test produced: never null."""
    assert data is not None
    return data


def _partition(msg: Message) -> int:
    partition = msg.partition()
    assert partition is not None  # a consumed message has one
    return partition


def read_all(broker: Kafka09, topic: str, partitions: int, expected: int) -> list[Row]:
    """Read every partition from the beginning (no group): (key, value, partition) rows."""
    config = broker.client_config({"group.id": "k9-reader", "enable.auto.commit": False})
    consumer = Consumer(config)
    rows: list[Row] = []
    try:
        consumer.assign([TP(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + DEADLINE_S
        while len(rows) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(1000, POLL_S):
                assert msg.error() is None, msg.error()
                rows.append(
                    (_bytes(msg.key()).decode(), _bytes(msg.value()).decode(), _partition(msg))
                )
    finally:
        consumer.close()
    return rows


def high_watermarks(broker: Kafka09, topic: str, partitions: int) -> int:
    consumer = Consumer(broker.client_config({"group.id": "k9-marks"}))
    try:
        return sum(
            consumer.get_watermark_offsets(TP(topic, p), timeout=10)[1] for p in range(partitions)
        )
    finally:
        consumer.close()


def keyed(prefix: str, count: int, keys: int = 10) -> list[tuple[str, bytes]]:
    return [(f"series-{i % keys}", f"{prefix}-{i}".encode()) for i in range(count)]


def test_roundtrip_thousands_of_keyed_messages(kafka09: Kafka09) -> None:
    topic, partitions, count = "k9.roundtrip", 3, 3000
    kafka09.create_topics([topic], partitions=partitions)
    per_partition = produce(kafka09, topic, keyed("v", count))
    assert len(per_partition) >= 2, f"keys should spread over partitions: {per_partition}"

    consumer = Consumer(
        kafka09.client_config(
            {
                "group.id": "k9-roundtrip",
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10000,
            }
        )
    )
    seen: list[tuple[str, int, int]] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + DEADLINE_S
        while len(seen) < count and time.monotonic() < deadline:
            for msg in consumer.consume(1000, POLL_S):
                assert msg.error() is None, msg.error()
                # 0.9 message format v0: no timestamps, so event time must come from payloads.
                assert msg.timestamp()[0] == TIMESTAMP_NOT_AVAILABLE
                index = int(_bytes(msg.value()).decode().split("-")[1])
                seen.append((_bytes(msg.key()).decode(), index, _partition(msg)))
    finally:
        consumer.close()

    assert sorted(index for _, index, _ in seen) == list(range(count))
    by_key: defaultdict[str, list[int]] = defaultdict(list)
    key_partitions: defaultdict[str, set[int]] = defaultdict(set)
    for key, index, partition in seen:
        by_key[key].append(index)
        key_partitions[key].add(partition)
    assert all(len(parts) == 1 for parts in key_partitions.values()), key_partitions
    for key, indexes in by_key.items():
        assert indexes == sorted(indexes), f"per-key order broken for {key}"


def test_data_and_offsets_survive_crash_and_restart(kafka09_fresh: Kafka09) -> None:
    broker = kafka09_fresh
    topic, partitions = "k9.persist", 2
    broker.create_topics([topic], partitions=partitions)
    first = keyed("a", 2000)
    produce(broker, topic, first)

    # Commit a group's position on half the data, to check offsets persist too.
    group = broker.client_config({"group.id": "k9-persist", "enable.auto.commit": False})
    consumer = Consumer(group)
    try:
        consumer.assign([TP(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        got = 0
        deadline = time.monotonic() + DEADLINE_S
        while got < len(first) and time.monotonic() < deadline:
            got += len(consumer.consume(1000, POLL_S))
        assert got == len(first)
        committed = consumer.commit(asynchronous=False)
        assert committed is not None and all(tp.error is None for tp in committed)
    finally:
        consumer.close()

    pids = broker.pids()
    broker.restart(crash=True)  # SIGKILL: no clean shutdown, log recovery on start
    assert not set(pids) & set(broker.pids())
    assert high_watermarks(broker, topic, partitions) == len(first)
    assert sorted(v for _, v, _ in read_all(broker, topic, partitions, len(first))) == sorted(
        v.decode() for _, v in first
    )

    second = keyed("b", 500)
    produce(broker, topic, second)
    broker.restart()  # graceful this time
    assert high_watermarks(broker, topic, partitions) == len(first) + len(second)

    consumer = Consumer(group)
    resumed: list[str] = []
    try:
        positions = consumer.committed([TP(topic, p) for p in range(partitions)], timeout=10)
        assert sum(tp.offset for tp in positions) == len(first), positions
        consumer.assign(positions)
        deadline = time.monotonic() + DEADLINE_S
        while len(resumed) < len(second) and time.monotonic() < deadline:
            resumed += [_bytes(m.value()).decode() for m in consumer.consume(1000, POLL_S)]
    finally:
        consumer.close()
    assert sorted(resumed) == sorted(v.decode() for _, v in second), "group resumed elsewhere"

    broker.stop()
    assert broker.pids() == []
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} outlived stop()"


# {app_id}, {bootstrap} and the agent body are filled in per test.
FAUST_APP = """
import faust
{shim}
app = faust.App(
    "{app_id}",
    broker="kafka://{bootstrap}",
    broker_api_version="0.9",
    store="memory://",
    topic_allow_declare=False,
    topic_disable_leader=True,
    topic_partitions=2,
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
)
source = app.topic("{app_id}.in", key_type=str, value_serializer="json")
sink = app.topic("{app_id}.out", key_type=str, value_serializer="json")
counts = app.Table("counts", default=int, partitions=2) if {with_table} else None


@app.agent(source)
async def double(stream):
    async for key, value in stream.items():
        seen = None
        if counts is not None:
            counts[key] += 1
            seen = counts[key]
        out = {{"key": key, "n": value["n"], "double": value["n"] * 2, "seen": seen}}
        await sink.send(key=key, value=out)


if __name__ == "__main__":
    app.main()
"""

# aiokafka's AIOKafkaConsumer.end_offsets/beginning_offsets refuse brokers <= 0.10.0,
# although its fetcher speaks ListOffsets v0. Faust table recovery calls them, so a
# Faust app with tables on 0.9 needs this guard lifted; stateless agents do not.
AIOKAFKA_09_SHIM = """
import aiokafka


async def _end_offsets(self, partitions):
    return await self._fetcher.end_offsets(partitions, self._request_timeout_ms)


async def _beginning_offsets(self, partitions):
    return await self._fetcher.beginning_offsets(partitions, self._request_timeout_ms)


aiokafka.AIOKafkaConsumer.end_offsets = _end_offsets
aiokafka.AIOKafkaConsumer.beginning_offsets = _beginning_offsets
"""


@pytest.mark.parametrize("with_table", [False, True], ids=["stateless", "table"])
def test_faust_app_consumes_and_produces(
    kafka09: Kafka09, tmp_path: Path, with_table: bool
) -> None:
    import aiokafka  # the version only matters here

    if aiokafka.__version__ != "0.12.0":
        pytest.fail(
            f"aiokafka {aiokafka.__version__} refuses 0.9 brokers; run via make test-kafka09",
            pytrace=False,
        )
    app_id = "k9table" if with_table else "k9plain"
    topics = [f"{app_id}.in", f"{app_id}.out"]
    # Faust may not create topics here (0.9 has no CreateTopics): changelogs too.
    kafka09.create_topics(topics, partitions=2)
    compact = {"cleanup.policy": "compact"}  # what Faust would declare for a changelog
    kafka09.create_topics([f"{app_id}-counts-changelog"], partitions=2, configs=compact)
    app_file = tmp_path / f"{app_id}.py"
    source = FAUST_APP.format(
        app_id=app_id,
        bootstrap=kafka09.bootstrap,
        with_table=with_table,
        shim=AIOKAFKA_09_SHIM if with_table else "",
    )
    app_file.write_text(source)
    count, keys = 300, 6
    inputs = [(f"series-{i % keys}", json.dumps({"n": i}).encode()) for i in range(count)]

    log_path = tmp_path / "faust.log"
    worker: subprocess.Popen[bytes] | None = None
    outputs: list[dict[str, Any]] = []
    try:
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, str(app_file), "worker", "--without-web", "--loglevel", "info"],
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        produce(kafka09, topics[0], inputs)
        reader = Consumer(
            kafka09.client_config({"group.id": f"{app_id}-check", "auto.offset.reset": "earliest"})
        )
        try:
            reader.subscribe([topics[1]])
            deadline = time.monotonic() + DEADLINE_S
            while len(outputs) < count and time.monotonic() < deadline:
                assert worker.poll() is None, "faust worker exited early"
                for msg in reader.consume(500, POLL_S):
                    assert msg.error() is None, msg.error()
                    outputs.append(json.loads(_bytes(msg.value())))
        finally:
            reader.close()
    finally:
        terminate_group(worker, 15.0)
        with contextlib.suppress(OSError):
            print(log_path.read_text(errors="replace")[-8000:])  # shown only on failure

    assert len(outputs) == count, f"got {len(outputs)} of {count} outputs"
    assert sorted(int(o["n"]) for o in outputs) == list(range(count))
    assert all(o["double"] == 2 * int(o["n"]) for o in outputs)
    if with_table:
        final_seen: dict[str, int] = {}
        for o in outputs:
            final_seen[o["key"]] = max(final_seen.get(o["key"], 0), int(o["seen"]))
        assert final_seen == {f"series-{k}": count // keys for k in range(keys)}
        changelog = high_watermarks(kafka09, f"{app_id}-counts-changelog", 2)
        assert changelog == count, "every table update should reach the changelog topic"
