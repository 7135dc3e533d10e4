"""Shared plumbing for the service benchmarks: events, a broker, worker processes, polling.

Everything here is setup, never timed: events are generated and serialized once,
processes are started and stopped, and progress is read from each process's
HTTP endpoint with a bounded poll.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from schemas.keys import partition_key
from stream.simulate import FleetSpec, Incident, simulate

REPO = Path(__file__).resolve().parents[1]

# Source and output topics of the worker; the mock broker auto-creates them.
WORKER_TOPICS = (
    "llmwatch.inference",
    "llmwatch.gpu",
    "llmwatch.metrics",
    "llmwatch.feedback",
    "llmwatch.alerts",
    "llmwatch.deadletter",
)


def series_key(event: dict[str, Any]) -> bytes:
    """The key every publisher uses (schemas.keys): inference by model, so all of a
    model's series meet in one engine, as they do in production."""
    return partition_key(str(event["kind"]), event).encode()


def inference_spec(events: int, rate: float, seed: int = 11, **kw: Any) -> FleetSpec:
    """A fleet whose simulated duration yields about ``events`` inference events."""
    return FleetSpec(
        seed=seed,
        duration_s=max(1.0, events / rate),
        rate=rate,
        gpu_interval_s=3600.0,
        feedback_fraction=0.0,
        **kw,
    )


def inference_payloads(
    spec: FleetSpec,
    incidents: Sequence[Incident] = (),
    limit: int | None = None,
    seen: Callable[[int, dict[str, Any]], None] | None = None,
) -> tuple[list[bytes], list[bytes]]:
    """Keys and JSON values of the fleet's inference events, serialised as they are
    simulated (a million event dicts would take GBs). ``seen(index, event)`` is called
    for each event kept."""
    keys: list[bytes] = []
    values: list[bytes] = []
    for chunk in simulate(spec, list(incidents)):
        for e in chunk:
            if e["kind"] != "inference":
                continue
            if limit is not None and len(values) >= limit:
                return keys, values
            if seen is not None:
                seen(len(values), e)
            keys.append(series_key(e))
            # A copy: each bytes object orjson returns keeps about 4 KB resident (its
            # write buffer), 10x the JSON; a million of them took 4 GB.
            values.append(memoryview(orjson.dumps(e)).tobytes())
    return keys, values


def create_topics(bootstrap: str, topics: Iterable[str]) -> None:
    """A metadata request per topic auto-creates it on the mock cluster."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for t in topics:
        producer.list_topics(topic=t, timeout=10)


def produce_all(bootstrap: str, topic: str, keys: Sequence[bytes], values: Sequence[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 1_000_000,
            "compression.type": "none",
        }
    )
    for k, v in zip(keys, values, strict=True):
        while True:
            try:
                producer.produce(topic, key=k, value=v)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120) != 0:
        raise RuntimeError(f"could not deliver every message to {topic}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: bytes = resp.read()
        return body


def metric_sum(text: str, name: str) -> float:
    """Sum of every sample of ``name`` in a Prometheus text body (no label filter)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def start(
    args: Sequence[str], env: dict[str, str], log: Path, python: str | None = None
) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    out = log.open("wb")
    proc = subprocess.Popen(
        [python or sys.executable, *args],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, out


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def worker_env(bootstrap: str, port: int, state_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "LLMWATCH_BOOTSTRAP_SERVERS": bootstrap,
        "LLMWATCH_WEB_PORT": str(port),
        "LLMWATCH_STATE_DIR": str(state_dir),
        "LLMWATCH_STORE": "memory://",
        **extra,
    }


def wait_for(
    probe: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    log: Path,
    limit_s: float,
    what: str,
    every_s: float = 0.2,
) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited {proc.returncode}\n{_tail(log)}")
        try:
            if probe():
                return
        except OSError:
            pass
        time.sleep(every_s)  # polling another process: nothing to wait on directly
    raise TimeoutError(f"{what}: not ready in {limit_s} s\n{_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-3000:]
    except OSError:
        return ""


class Feeder:
    """Keeps a consumer fed without ever letting its lag pass ``high`` messages.

    The embedded broker (librdkafka's mock cluster) keeps only about 5 MB per
    partition and silently drops older segments, so a topic cannot be pre-filled
    with a million events; instead the harness produces (pre-serialized) chunks
    whenever the consumer's lag falls under ``low``.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        keys: Sequence[bytes],
        values: Sequence[bytes],
        low: int = 12_000,
        chunk: int = 8_000,
        client: dict[str, Any] | None = None,
    ) -> None:
        from confluent_kafka import Producer

        self.topic, self.keys, self.values = topic, keys, values
        self.low, self.chunk = low, chunk
        self.sent = 0
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 5,
                "queue.buffering.max.messages": 1_000_000,
                **(client or {}),
            }
        )

    def feed(self, consumed: float) -> None:
        if self.sent >= len(self.values) or self.sent - consumed >= self.low:
            return
        end = min(len(self.values), self.sent + self.chunk)
        produce, topic = self.producer.produce, self.topic
        for k, v in zip(self.keys[self.sent : end], self.values[self.sent : end], strict=True):
            produce(topic, key=k, value=v)
        self.producer.poll(0)
        self.sent = end

    def close(self) -> None:
        self.producer.flush(30)


def drain_rate(
    read_count: Callable[[], float],
    total: int,
    proc: subprocess.Popen[bytes],
    log: Path,
    limit_s: float,
    every_s: float = 0.25,
    feeder: Feeder | None = None,
) -> dict[str, float]:
    """Poll a consumed-events counter until ``total`` (or the time limit); sustained rate.

    The clock starts at the first poll that sees events (so start-up, group join
    and partition assignment are excluded) and stops at the poll that sees the
    last one, or at the limit, in which case the rate is over what was drained.
    Polls are ``every_s`` apart (0.25 s by default): rendering the worker's /metrics is
    not free, and the embedded-broker feeder needs them often.
    """
    t0 = c0 = None
    deadline = time.monotonic() + limit_s
    count = 0.0
    now = time.monotonic()
    while now < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"drain: process exited {proc.returncode}\n{_tail(log)}")
        try:
            count = read_count()
        except OSError:
            count = c0 or 0.0
        if feeder is not None:
            feeder.feed(count)
        now = time.monotonic()
        if t0 is None and count > 0:
            t0, c0 = now, count
        if count >= total:
            break
        time.sleep(every_s)
    if t0 is None or c0 is None or now <= t0:
        raise RuntimeError(f"drain: no progress in {limit_s} s\n{_tail(log)}")
    return {
        "events": count,
        "timed_events": count - c0,
        "seconds": round(now - t0, 3),
        "events_per_s": round((count - c0) / (now - t0)),
        "complete": count >= total,
    }
