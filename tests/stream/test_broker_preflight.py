"""An unreachable broker is one line and exit code 2; the embedded broker honours
LLMWATCH_PARTITIONS; ``topics --create`` works against it or says why not."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from stream.broker import EmbeddedBroker, is_embedded, worker_topic_partitions
from stream.cli import main
from stream.preflight import BrokerUnreachable, check_brokers, check_metadata, check_reachable
from stream.settings import load_settings
from tests.conftest import read_topic

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def not_kafka() -> Iterator[str]:
    """A TCP server that accepts and hangs up: reachable, but no Kafka behind it."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"127.0.0.1:{srv.getsockname()[1]}"
    srv.close()


def test_a_closed_port_is_one_line_naming_the_variable() -> None:
    settings = load_settings(bootstrap_servers=f"127.0.0.1:{_closed_port()}")
    with pytest.raises(BrokerUnreachable) as info:
        check_brokers(settings, wait_s=0)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("LLMWATCH_BOOTSTRAP_SERVERS: no Kafka broker answers")
    assert "Connection refused" in text


def test_it_tries_again_until_the_wait_is_over() -> None:
    now = [0.0]
    pauses: list[float] = []

    def pause(s: float) -> None:
        pauses.append(s)
        now[0] += s

    settings = load_settings(bootstrap_servers=f"127.0.0.1:{_closed_port()}")
    with pytest.raises(BrokerUnreachable):
        check_reachable(settings, 3.0, clock=lambda: now[0], pause=pause)
    assert len(pauses) == 6 and now[0] == pytest.approx(3.0)


def test_a_listener_that_is_not_kafka_is_named(not_kafka: str) -> None:
    settings = load_settings(bootstrap_servers=not_kafka)
    assert check_reachable(settings, 0) == [not_kafka]
    with pytest.raises(BrokerUnreachable, match="accepts connections but no Kafka metadata"):
        check_metadata(settings, 0.5)


def test_a_running_broker_passes(embedded_broker: str) -> None:
    check_brokers(load_settings(bootstrap_servers=embedded_broker), wait_s=0)


@pytest.mark.parametrize("command", [["worker"], ["notify"], ["alerts", "tail"]], ids=" ".join)
def test_an_unreachable_broker_exits_2_with_one_line(command: list[str]) -> None:
    env = {
        **os.environ,
        "LLMWATCH_BOOTSTRAP_SERVERS": f"127.0.0.1:{_closed_port()}",
        "LLMWATCH_CONNECT_TIMEOUT_S": "0s",
    }
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        f"llmwatch {command[0]}: error: LLMWATCH_BOOTSTRAP_SERVERS: no Kafka"
    )
    assert "Traceback" not in done.stdout + done.stderr


def _partitions(bootstrap: str) -> dict[str, int]:
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return {name: len(t.partitions) for name, t in meta.topics.items()}


def test_embedded_broker_makes_the_worker_topics_with_llmwatch_partitions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMWATCH_PARTITIONS", "3")
    wanted = worker_topic_partitions(load_settings())
    assert "llmwatch-llmwatch-engines-changelog" in wanted and len(wanted) == 8
    with EmbeddedBroker(topics=wanted) as bootstrap:
        assert _partitions(bootstrap) == dict.fromkeys(wanted, 3)
        meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
        assert is_embedded(meta.cluster_id)
        p = Producer({"bootstrap.servers": bootstrap})
        for i in range(30):
            p.produce("llmwatch.inference", key=f"k{i}".encode(), value=f"v{i}".encode())
        assert p.flush(10) == 0
        records = read_topic(bootstrap, "llmwatch.inference", expected=30)
        assert sorted(r.value for r in records) == sorted(f"v{i}".encode() for i in range(30))
        assert {r.partition for r in records} == {0, 1, 2}
        # Topics nobody named still auto-create, with the mock's own count.
        p.produce("elsewhere", value=b"x")
        assert p.flush(10) == 0
        assert _partitions(bootstrap)["elsewhere"] == EmbeddedBroker.AUTO_PARTITIONS


def test_topics_create_against_the_embedded_broker(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMWATCH_PARTITIONS", "2")
    with EmbeddedBroker(topics=worker_topic_partitions(load_settings())) as bootstrap:
        monkeypatch.setenv("LLMWATCH_BOOTSTRAP_SERVERS", bootstrap)
        assert main(["topics", "--create"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert len(out) == 8 and all(line.startswith("exists ") for line in out)
        # Another partition count or app id cannot be made there: it says why.
        monkeypatch.setenv("LLMWATCH_PARTITIONS", "5")
        assert main(["topics", "--create", "--app-id", "other"]) == 1
        err = capsys.readouterr().err
        assert "llmwatch.inference: has 2 partitions, not 5" in err
        assert "other-other-engines-changelog: missing" in err
        assert "no CreateTopics" in err and "LLMWATCH_PARTITIONS" in err


def test_topics_create_without_a_broker_says_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LLMWATCH_BOOTSTRAP_SERVERS", raising=False)
    assert main(["topics", "--create"]) == 2
    err = capsys.readouterr().err
    assert "needs no --create" in err and "LLMWATCH_PARTITIONS" in err
