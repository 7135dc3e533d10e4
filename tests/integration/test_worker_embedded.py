"""A real worker process against the embedded Kafka-protocol broker, end to end.

Publishes a simulated fleet with an injected error burst plus a few malformed
messages, then checks the alerts topic, the dead-letter topic and the worker's
web endpoints. Every wait is a bounded poll; the worker is always killed.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from schemas.models import Alert, AlertStatus, DeadLetter
from stream.settings import Settings
from stream.simulate import FleetSpec, Incident, simulate
from tests.integration.workerkit import MALFORMED, TARGET, free_port, key_of

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SPEC = FleetSpec(duration_s=240, rate=15, hosts=3, gpus_per_host=1, gpu_interval_s=5)
BURST = Incident(
    kind="error_burst", start_offset_s=120, duration_s=100, severity=2.5, target=TARGET
)


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Iterator[str]:
    """The shared session broker when tests/conftest.py offers one, else a private mock."""
    try:
        yield str(request.getfixturevalue("embedded_broker"))
        return
    except pytest.FixtureLookupError:
        pass
    mock = Producer({"test.mock.num.brokers": 1, "log_level": 3})
    b = next(iter(mock.list_topics(timeout=10).brokers.values()))
    yield f"{b.host}:{b.port}"
    del mock


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as resp:
        body: bytes = resp.read()
        return body


def _events_in(port: int) -> float:
    text = _get(f"http://127.0.0.1:{port}/metrics").decode()
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "llmwatch_events_in_total":
                total += s.value
    return total


def _wait_healthy(port: int, proc: subprocess.Popen[bytes], log: Path, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"worker exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if orjson.loads(_get(f"http://127.0.0.1:{port}/healthz"))["status"] == "ok":
                return
        except OSError:
            pass
        time.sleep(0.2)  # polling a real process; no clock to inject across processes
    pytest.fail(f"worker /healthz did not answer in {limit_s} s:\n{log.read_text()[-3000:]}")


def _ends(consumer: Consumer, topic: str) -> dict[int, int]:
    meta = consumer.list_topics(topic=topic, timeout=10).topics[topic].partitions
    out = {}
    for p in meta:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > 0:
            out[p] = high
    return out


def _committed(broker: str, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    probe = Consumer({"bootstrap.servers": broker, "group.id": group})
    try:
        got = probe.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in got if tp.offset >= 0}
    finally:
        probe.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_worker_detects_burst_and_dead_letters_malformed(broker: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "LLMWATCH_BOOTSTRAP_SERVERS": broker,
        "LLMWATCH_WEB_PORT": str(port),
        "LLMWATCH_STATE_DIR": str(tmp_path / "state"),
        "LLMWATCH_STORE": "memory://",
        "LLMWATCH_CHECKPOINT_INTERVAL_S": "1",
    }
    settings = Settings(bootstrap_servers=broker)
    topics = {
        "inference": settings.topic_inference,
        "gpu": settings.topic_gpu,
        "feedback": settings.topic_feedback,
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker", "--loglevel", "warn"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": f"it-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        _wait_healthy(port, proc, log, limit_s=30)
        producer = Producer({"bootstrap.servers": broker, "linger.ms": 5})
        outputs = [settings.topic_alerts, settings.topic_deadletter]
        for name in outputs:  # a metadata request auto-creates the topic on the mock
            producer.list_topics(topic=name, timeout=10)
        consumer.subscribe(outputs)
        joined_by = time.monotonic() + 15
        while not consumer.assignment() and time.monotonic() < joined_by:
            consumer.poll(0.2)  # join the group first, so latency below is the worker's
        assert consumer.assignment(), "test consumer never joined its group"
        published: Counter[str] = Counter()
        for chunk in simulate(SPEC, [BURST]):
            for event in chunk:
                value = orjson.dumps(event)
                producer.produce(topics[event["kind"]], key=key_of(event), value=value)
                published[event["kind"]] += 1
        for raw in MALFORMED:
            producer.produce(settings.topic_inference, key=b"gw-us-east|llama-3-8b", value=raw)
        assert producer.flush(10) == 0
        sent_at = time.monotonic()
        total = sum(published.values()) + len(MALFORMED)
        assert total > 3000

        alerts: list[Alert] = []
        dead: list[DeadLetter] = []
        first_fire_s = None
        deadline = sent_at + 40
        while time.monotonic() < deadline:
            msg = consumer.poll(0.3)
            if msg is None or msg.error():
                if dead and first_fire_s is not None and len(dead) >= len(MALFORMED):
                    break
                continue
            payload = msg.value()
            assert payload is not None  # neither alerts nor dead letters are null
            if msg.topic() == settings.topic_alerts:
                alert = Alert.model_validate_json(payload)
                alerts.append(alert)
                hit = alert.detector == "error_rate" and all(
                    alert.labels.get(k) == v for k, v in TARGET.items()
                )
                if hit and alert.status is AlertStatus.FIRING and first_fire_s is None:
                    first_fire_s = time.monotonic() - sent_at
            else:
                dead.append(DeadLetter.model_validate_json(payload))

        assert first_fire_s is not None, (
            f"{len(alerts)} alerts, {len(dead)} dead letters, events in "
            f"{_events_in(port)} of {total}; worker log:\n{log.read_text()[-3000:]}"
        )
        assert sorted(base64.b64decode(d.raw_b64) for d in dead) == sorted(MALFORMED)
        assert all(d.topic == settings.topic_inference and d.reason for d in dead)
        assert all(d.partition is not None and d.offset is not None for d in dead)
        reasons = {base64.b64decode(d.raw_b64): d.reason for d in dead}
        assert "JSON" in reasons[MALFORMED[0]]
        assert "latency_ms" in reasons[MALFORMED[3]]
        fired = [a for a in alerts if a.status is AlertStatus.FIRING]
        assert len({a.alert_id for a in fired}) == len(fired), "an alert fired twice"

        seen = 0.0
        while time.monotonic() < deadline + 10 and seen < total:
            seen = _events_in(port)
            time.sleep(0.2)
        assert seen == total
        active = orjson.loads(_get(f"http://127.0.0.1:{port}/alerts"))
        assert any(a["detector"] == "error_rate" for a in active)
        metrics = _get(f"http://127.0.0.1:{port}/metrics").decode()
        assert "llmwatch_batch_seconds_bucket" in metrics
        assert 'llmwatch_rejects_total{reason_class="json"' in metrics
        # Offsets are committed only past events a saved snapshot covers; once the
        # stream is drained and checkpointed, the group's commits reach every end.
        ends = _ends(consumer, settings.topic_inference)
        committed: dict[int, int] = {}
        while time.monotonic() < deadline + 30 and committed != ends:
            committed = _committed(broker, "llmwatch", settings.topic_inference, list(ends))
            time.sleep(0.3)
        assert committed == ends
        print(f"\nevents {total}, first error_rate alert {first_fire_s:.2f} s after publish")
    finally:
        consumer.close()
        _stop(proc)
