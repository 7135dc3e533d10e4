"""``llmwatch otlp-bridge`` as deployed: a real process on the embedded broker, stopped the
way compose and Kubernetes stop it (SIGTERM)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Record
from tests.schemas.test_otlp import ENCODERS, T0, Spans, chat

MS = 10**6


def _committed(bootstrap: str, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        offsets = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        return sum(max(tp.offset, 0) for tp in offsets)
    finally:
        c.close()


def test_sigterm_finishes_the_batch_commits_and_prints_the_counts(
    embedded_broker: str, topic_name: str, consume_all: Callable[..., list[Record]]
) -> None:
    source, inference = topic_name, f"{topic_name}.inf"
    group = f"bridge-{uuid.uuid4().hex[:6]}"
    producer = Producer({"bootstrap.servers": embedded_broker})
    for k in range(2):
        t = Spans()
        for i in range(4):
            t.span("chat", T0 + (k * 4 + i) * 100 * MS, 200 + i, chat(model="llama-3-8b"))
        producer.produce(source, value=ENCODERS["otlp_proto"](t.take()))
    assert producer.flush(10) == 0
    cli = [sys.executable, "-m", "stream.cli", "otlp-bridge", "--bootstrap", embedded_broker]
    proc = subprocess.Popen(
        [*cli, "--topic", source, "--group", group, "--port", "0"],
        env=_env(inference),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith(f"llmwatch otlp-bridge: {source}"), first
        port = int(re.search(r"/metrics on port (\d+)", first).group(1))  # type: ignore[union-attr]
        assert len(consume_all(inference, expected=8)) == 8  # the bridge is mid-run
        assert _get(port, "/healthz")[0] == 200
        body = _metrics_once_committed(port, messages=2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "2 messages, 8 spans, 8 events, 0 non-GenAI spans skipped" in err
    assert _committed(embedded_broker, group, source) == 2
    # What /metrics said matches what the bridge printed on exit, and promtool accepts it.
    printed = re.search(
        r"(\d+) messages, (\d+) spans, (\d+) events, (\d+) non-GenAI spans skipped, "
        r"(\d+) invalid spans, (\d+) messages dead-lettered",
        err,
    )
    assert printed is not None, err
    msgs, _spans, events, skipped, invalid, dead = (int(g) for g in printed.groups())
    got = _samples(body)
    assert got[("llmwatch_otlp_messages_total", "published")] == msgs - dead
    assert got[("llmwatch_otlp_messages_total", "dead_lettered")] == dead
    assert got[("llmwatch_otlp_spans_total", "published")] == events
    assert got[("llmwatch_otlp_spans_total", "skipped_non_genai")] == skipped
    assert got[("llmwatch_otlp_spans_total", "invalid")] == invalid
    assert got[("llmwatch_otlp_events_published_total", "")] == events == 8
    assert got[("llmwatch_otlp_produce_failures_total", "")] == 0
    assert got[("llmwatch_otlp_last_commit_timestamp_seconds", "")] > 0
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _samples(body: str) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("outcome", "")): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def _metrics_once_committed(port: int, messages: int, timeout_s: float = 30.0) -> str:
    """/metrics once the bridge has committed ``messages`` (the events reach the topic
    just before the commit that counts them)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = _get(port, "/metrics")
        s = _samples(body)
        done = sum(v for (n, _), v in s.items() if n == "llmwatch_otlp_messages_total")
        if (status == 200 and done >= messages) or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def _env(inference: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMWATCH_")}
    return {**env, "LLMWATCH_TOPIC_INFERENCE": inference}
