"""Helpers for tests that run real ``llmwatch worker`` processes against a broker.

Events come from the fleet simulator with one error burst plus a few malformed
messages; every wait is a bounded poll of the worker's web endpoints or a topic.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer
from confluent_kafka import TopicPartition as TP
from prometheus_client.parser import text_string_to_metric_families

from schemas.keys import partition_key
from schemas.models import Alert, AlertStatus, DeadLetter
from stream.settings import Settings
from stream.simulate import FleetSpec, Incident, simulate

REPO = Path(__file__).resolve().parents[2]
SPEC = FleetSpec(duration_s=300, rate=12, hosts=3, gpus_per_host=1, gpu_interval_s=5)
TARGET = {"gateway": "gw-us-east", "model": "llama-3-8b"}
BURST = Incident(
    kind="error_burst", start_offset_s=120, duration_s=120, severity=2.5, target=TARGET
)
GOOD_TS = "2024-06-03T08:01:00Z"
MALFORMED = [
    b"{this is not json",
    b"[1, 2, 3]",
    orjson.dumps({"kind": "inference", "ts": GOOD_TS, "gateway": "gw-us-east"}),
    orjson.dumps(
        {
            "kind": "inference",
            "ts": GOOD_TS,
            "gateway": "gw-us-east",
            "model": "llama-3-8b",
            "model_version": "v1",
            "request_id": "r-bad",
            "status": "ok",
            "latency_ms": -12.0,
        }
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def key_of(event: Mapping[str, Any]) -> bytes:
    """The product's key rule (schemas/keys.py), as every publisher applies it."""
    return partition_key(str(event["kind"]), event).encode()


def fleet_events() -> list[dict[str, Any]]:
    return [ev for chunk in simulate(SPEC, [BURST]) for ev in chunk]


def topic_for(settings: Settings, kind: str) -> str:
    topics = {
        "inference": settings.topic_inference,
        "gpu": settings.topic_gpu,
        "metric": settings.topic_metrics,
        "feedback": settings.topic_feedback,
    }
    return topics[kind]


def publish(producer: Producer, settings: Settings, events: Iterable[Mapping[str, Any]]) -> int:
    n = 0
    for ev in events:
        value = orjson.dumps(ev)
        producer.produce(topic_for(settings, ev["kind"]), key=key_of(ev), value=value)
        producer.poll(0)
        n += 1
    return n


def publish_malformed(producer: Producer, settings: Settings) -> None:
    for raw in MALFORMED:
        producer.produce(settings.topic_inference, key=b"gw-us-east|llama-3-8b", value=raw)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=3) as resp:
        body: bytes = resp.read()
        return body


def metric_sum(port: int, name: str) -> float:
    text = get(f"http://127.0.0.1:{port}/metrics").decode()
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                total += s.value
    return total


@dataclass
class WorkerProc:
    """One ``llmwatch worker`` subprocess with its own web port, state dir and log."""

    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProc:
        env = {**self.env, "LLMWATCH_WEB_PORT": str(self.port)}
        with self.log.open("ab") as out:
            out.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "worker", "--loglevel", "warn", *self.args],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthz(self) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = orjson.loads(get(f"http://127.0.0.1:{self.port}/healthz"))
            return body
        except OSError:
            return None

    def wait_healthy(self, limit_s: float = 60) -> None:
        wait_for(lambda: self.healthz() is not None, limit_s, "worker /healthz", self)

    def assigned(self) -> set[int]:
        health = self.healthz()
        return set(health.get("assigned", [])) if health else set()

    def offsets(self) -> dict[str, int]:
        h = self.healthz()
        return dict(h.get("offsets", {})) if h else {}

    def get_alerts(self) -> list[Alert]:
        """The worker's active alerts (GET /alerts)."""
        raw = orjson.loads(get(f"http://127.0.0.1:{self.port}/alerts"))
        return [Alert.model_validate(a) for a in raw]

    def events_in(self) -> float:
        try:
            return metric_sum(self.port, "llmwatch_events_in_total")
        except OSError:
            return 0.0

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no last checkpoint, no offset commit."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


def wait_for(check: Any, limit_s: float, what: str, *workers: WorkerProc) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for w in workers:
            if w.proc is not None and w.proc.poll() is not None:
                raise AssertionError(f"worker exited ({w.proc.returncode}):\n{w.tail()}")
        if check():
            return
        time.sleep(0.2)  # polling real processes: there is no clock to inject across them
    logs = "\n".join(f"{w.healthz()}\n{w.tail()}" for w in workers)
    raise AssertionError(f"{what}: not reached within {limit_s} s\n{logs}")


def covered(workers: Iterable[WorkerProc], ends: Mapping[str, int]) -> bool:
    """Whether the workers' engines together have seen every offset up to ``ends``
    ("topic/partition" -> high watermark)."""
    seen: dict[str, int] = {}
    for w in workers:
        for tp, off in w.offsets().items():
            seen[tp] = max(seen.get(tp, -1), off)
    return all(seen.get(tp, -1) >= end - 1 for tp, end in ends.items() if end > 0)


def firing_problems(alerts: Iterable[Alert]) -> list[str]:
    """Duplicate firing, per fingerprint, in topic order: an alert_id firing twice, or a
    second FIRING before the first episode resolved."""
    problems = []
    fired_ids: set[str] = set()
    open_: dict[str, str] = {}
    for a in alerts:
        if a.status is AlertStatus.FIRING:
            if a.alert_id in fired_ids:
                problems.append(f"{a.alert_id} fired twice")
            if a.fingerprint in open_:
                problems.append(f"{a.fingerprint} fired again while {open_[a.fingerprint]} open")
            fired_ids.add(a.alert_id)
            open_[a.fingerprint] = a.alert_id
        else:
            open_.pop(a.fingerprint, None)
    return problems


def by_fingerprint(alerts: Iterable[Alert]) -> dict[str, list[Alert]]:
    out: dict[str, list[Alert]] = defaultdict(list)
    for a in alerts:
        out[a.fingerprint].append(a)
    return out


def read_values(client: Mapping[str, Any], topic: str, partitions: int) -> list[bytes]:
    """Every value on ``topic`` up to its high watermarks, partition by partition (so
    each fingerprint's alerts come in the order they were published)."""
    consumer = Consumer({**client, "group.id": "workerkit-reader", "enable.auto.commit": False})
    out: list[bytes] = []
    try:
        for p in range(partitions):
            high = consumer.get_watermark_offsets(TP(topic, p), timeout=10)[1]
            if high <= 0:
                continue
            consumer.assign([TP(topic, p, OFFSET_BEGINNING)])
            got, deadline = 0, time.monotonic() + 20
            while got < high and time.monotonic() < deadline:
                for msg in consumer.consume(500, 0.3):
                    if msg.error() is None:
                        value, offset = msg.value(), msg.offset()
                        assert value is not None and offset is not None  # alerts are never null
                        out.append(value)
                        got = offset + 1
    finally:
        consumer.close()
    return out


def high_watermarks(
    client: Mapping[str, Any], topics: Iterable[str], partitions: int
) -> dict[str, int]:
    """ "topic/partition" -> high watermark, the form ``covered`` takes."""
    consumer = Consumer({**client, "group.id": "workerkit-marks"})
    try:
        return {
            f"{t}/{p}": consumer.get_watermark_offsets(TP(t, p), timeout=10)[1]
            for t in topics
            for p in range(partitions)
        }
    finally:
        consumer.close()


def is_target(alert: Alert) -> bool:
    return alert.detector == "error_rate" and all(
        alert.labels.get(k) == v for k, v in TARGET.items()
    )


def assert_dead_letters(values: Iterable[bytes], source_topic: str) -> None:
    """Each malformed message dead-lettered exactly once (a replay must not repeat
    them), with its source and a reason that names the problem."""
    dead = [DeadLetter.model_validate_json(v) for v in values]
    assert sorted(base64.b64decode(d.raw_b64) for d in dead) == sorted(MALFORMED)
    assert all(d.topic == source_topic and d.reason for d in dead)
    assert all(d.partition is not None and d.offset is not None for d in dead)
    reasons = {base64.b64decode(d.raw_b64): d.reason for d in dead}
    assert "JSON" in reasons[MALFORMED[0]]
    assert "latency_ms" in reasons[MALFORMED[3]]


def assert_fired_once(alerts: list[Alert]) -> None:
    """No duplicate firing; the burst's alerts (one per model version) fired exactly once
    each, so none was lost and none re-fired."""
    problems = firing_problems(alerts)
    bad = {p.split()[0] for p in problems}
    trail = [
        (a.status.value, a.alert_id, a.detector, a.labels.get("model"), a.ends_at, a.summary[:80])
        for a in alerts
        if a.fingerprint in bad
    ]
    assert problems == [], (problems, trail)
    target = by_fingerprint(a for a in alerts if is_target(a))
    assert target, "the burst raised no error_rate alert"
    for fingerprint, seq in target.items():
        firing = [a for a in seq if a.status is AlertStatus.FIRING]
        assert len(firing) == 1, f"{fingerprint} fired {len(firing)} times"
