"""``llmwatch otlp-bridge`` as deployed: a real process on the embedded broker, stopped the
way compose and Kubernetes stop it (SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition

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
        [*cli, "--topic", source, "--group", group],
        env=_env(inference),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith(f"llmwatch otlp-bridge: {source}")
        assert len(consume_all(inference, expected=8)) == 8  # the bridge is mid-run
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "2 messages, 8 spans, 8 events, 0 non-GenAI spans skipped" in err
    assert _committed(embedded_broker, group, source) == 2


def _env(inference: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMWATCH_")}
    return {**env, "LLMWATCH_TOPIC_INFERENCE": inference}
