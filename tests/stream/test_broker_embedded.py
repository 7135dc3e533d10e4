"""The embedded broker: a real Kafka-protocol endpoint on 127.0.0.1."""

from __future__ import annotations

import argparse
import socket
import threading

import pytest
from confluent_kafka import Producer

from stream.broker import BrokerError, EmbeddedBroker
from stream.commands import broker as broker_command
from tests.conftest import read_topic


def test_start_gives_a_loopback_address_that_accepts_tcp() -> None:
    b = EmbeddedBroker()
    with b as bootstrap:
        host, port = bootstrap.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        with socket.create_connection((host, int(port)), timeout=2):
            pass
        assert b.running
    assert not b.running
    with pytest.raises(BrokerError):
        _ = b.bootstrap


def test_round_trip_through_a_private_broker() -> None:
    with EmbeddedBroker() as bootstrap:
        p = Producer({"bootstrap.servers": bootstrap})
        for i in range(20):
            p.produce("roundtrip", key=f"k{i % 3}".encode(), value=f"v{i}".encode())
        assert p.flush(10) == 0
        records = read_topic(bootstrap, "roundtrip", expected=20)
        assert sorted(r.value for r in records) == sorted(f"v{i}".encode() for i in range(20))
        by_key: dict[bytes | None, set[int]] = {}
        for r in records:
            by_key.setdefault(r.key, set()).add(r.partition)
        assert all(len(parts) == 1 for parts in by_key.values())


def test_session_fixture_broker_is_shared(embedded_broker: str, topic_name: str) -> None:
    p = Producer({"bootstrap.servers": embedded_broker})
    p.produce(topic_name, value=b"hello")
    assert p.flush(10) == 0
    assert [r.value for r in read_topic(embedded_broker, topic_name, expected=1)] == [b"hello"]


def test_broker_command_prints_the_address(capsys: pytest.CaptureFixture[str]) -> None:
    stop = threading.Event()
    stop.set()  # return as soon as the broker is up
    rc = broker_command.run(argparse.Namespace(duration=None, brokers=1), stop=stop)
    out = capsys.readouterr().out.strip()
    assert rc == 0
    assert out.startswith("127.0.0.1:") and out.split(":")[1].isdigit()


def test_broker_command_leaves_the_sigterm_handler_as_it_was() -> None:
    import signal

    before = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    stop.set()
    broker_command.run(argparse.Namespace(duration=None, brokers=1), stop=stop)
    assert signal.getsignal(signal.SIGTERM) is before
