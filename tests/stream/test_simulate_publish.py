"""Publishing the simulated fleet: topics per kind, keys -> partitions, pacing, delivery counts.

Kafka is the real embedded broker; pacing runs on an injected clock, so no test
sleeps through event time.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest

from schemas.decode import decode_columns
from stream.cli import main
from stream.simulate import FleetSpec, Incident, simulate
from stream.simulate.publish import (
    FleetPublisher,
    Pacer,
    event_time,
    live_start,
    partition_key,
    publish_events,
)
from tests.conftest import Record

SPEC = FleetSpec(duration_s=60, rate=20, hosts=3, gpus_per_host=2, feedback_fraction=0.2)
BURST = Incident(
    kind="error_burst",
    start_offset_s=20,
    duration_s=30,
    severity=2.0,
    target={"gateway": "gw-us-east", "model": "llama-3-8b"},
)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.idled: list[float] = []

    def __call__(self) -> float:
        return self.now

    def idle(self, seconds: float) -> None:
        self.idled.append(seconds)
        self.now += seconds


def _topics(base: str) -> dict[str, str]:
    return {k: f"{base}.{k}" for k in ("inference", "gpu", "feedback")}


def _expected(spec: FleetSpec) -> Counter[str]:
    return Counter(e["kind"] for chunk in simulate(spec, [BURST]) for e in chunk)


def test_each_kind_lands_on_its_topic_and_each_series_on_one_partition(
    embedded_broker: str, topic_name: str, consume_all: Callable[..., list[Record]]
) -> None:
    topics = _topics(topic_name)
    pub = FleetPublisher({"bootstrap.servers": embedded_broker}, topics)
    stats = publish_events(simulate(SPEC, [BURST]), pub)
    assert pub.flush(10) == 0
    expected = _expected(SPEC)
    assert stats.sent == expected and all(expected[k] > 0 for k in topics)
    assert stats.delivered == sum(expected.values()) and stats.failed == 0

    for kind, topic in topics.items():
        records = consume_all(topic, expected=expected[kind])
        assert len(records) == expected[kind]
        partitions: dict[bytes | None, set[int]] = defaultdict(set)
        for r in records:
            event = orjson.loads(r.value)
            assert event["kind"] == kind
            assert r.key == partition_key(event)
            partitions[r.key].add(r.partition)
        # A series (key) never spans partitions, and there is more than one series.
        assert all(len(ps) == 1 for ps in partitions.values()), dict(partitions)
        assert len(partitions) > 1


def test_keys_keep_a_models_versions_and_gateways_together() -> None:
    base = {"kind": "inference", "model": "m", "host": "h1"}
    a = partition_key({**base, "model_version": "v1", "gateway": "gw-a"})
    b = partition_key({**base, "model_version": "v2", "gateway": "gw-b"})
    fb = partition_key({"kind": "feedback", "model": "m", "model_version": "v2"})
    assert a == b == fb == b"m"
    gpu0 = partition_key({"kind": "gpu", "host": "h1", "gpu_uuid": "GPU-0"})
    gpu1 = partition_key({"kind": "gpu", "host": "h1", "gpu_uuid": "GPU-1"})
    assert gpu0 == gpu1 == b"h1"
    with pytest.raises(ValueError, match="host: missing from a gpu event"):
        partition_key({"kind": "gpu", "gpu_uuid": "GPU-0"})


def test_pacer_spaces_events_by_event_time_over_speed() -> None:
    clock = FakeClock()
    pacer = Pacer(speed=10, clock=clock)
    sent_at = []
    for t in (500.0, 501.0, 501.0, 503.5):
        pacer.wait(t, clock.idle)
        sent_at.append(clock.now)
    assert sent_at == pytest.approx([1000.0, 1000.1, 1000.1, 1000.35])
    assert max(clock.idled) <= 0.1  # waits in short steps, so ^C is served promptly
    assert pacer.wall_at(510.0) == pytest.approx(1001.0)


def test_pacer_never_waits_when_behind() -> None:
    clock = FakeClock()
    pacer = Pacer(speed=2, clock=clock)
    pacer.wait(0.0, clock.idle)
    clock.now += 60  # the publisher stalled for a minute
    pacer.wait(10.0, clock.idle)
    assert clock.idled == []
    assert pacer.due_in(10.0) == pytest.approx(-55.0)
    with pytest.raises(ValueError, match="speed"):
        Pacer(speed=0)


def test_realtime_stamps_are_never_ahead_of_the_clock_and_the_worker_accepts_them(
    embedded_broker: str, topic_name: str
) -> None:
    speed, now = 20.0, 1_800_000_000.0
    spec = SPEC.model_copy(update={"start": live_start(now, SPEC.duration_s, speed)})
    clock = FakeClock(start=now)
    pub = FleetPublisher({"bootstrap.servers": embedded_broker}, _topics(topic_name))
    ahead: list[float] = []

    def on_event(event: dict[str, object], t: float) -> None:
        ahead.append(t - clock.now)
        # Decode as the worker would at the moment this event went out.
        _, rejects = decode_columns([orjson.dumps(event)], kind=str(event["kind"]), now=clock.now)
        assert not rejects, rejects[0].reason

    stats = publish_events(
        simulate(spec, []),
        pub,
        pacer=Pacer(speed, clock),
        on_event=on_event,
        clock=clock,
        idle=clock.idle,
    )
    assert pub.flush(10) == 0 and stats.failed == 0
    assert max(ahead) <= 1e-3  # never ahead of the clock at send time...
    assert ahead[-1] > -1.0  # ...and the last one stamped about "now"
    # The whole span took span / speed of (fake) wall time.
    assert clock.now - now == pytest.approx(SPEC.duration_s / speed, abs=0.2)
    assert stats.first_t is not None and stats.last_t is not None
    assert datetime.fromtimestamp(stats.last_t, UTC) <= datetime.fromtimestamp(now + 3, UTC)


def test_undeliverable_events_are_counted_as_failed_not_lost() -> None:
    # Nothing listens on port 1: every delivery times out and must be reported.
    pub = FleetPublisher(
        {"bootstrap.servers": "127.0.0.1:1"},
        _topics("unreachable"),
        overrides={"message.timeout.ms": 300, "log_level": 0},
    )
    events = [e for chunk in simulate(SPEC, []) for e in chunk][:5]
    for e in events:
        pub.send(e)
    left = pub.flush(10)
    assert left == 0
    assert pub.stats.total == 5 and pub.stats.failed == 5 and pub.stats.delivered == 0
    assert pub.stats.last_error


def test_unknown_kind_is_refused_naming_it(embedded_broker: str) -> None:
    pub = FleetPublisher({"bootstrap.servers": embedded_broker}, {"inference": "t.x"})
    with pytest.raises(ValueError, match="kind: no topic for event kind 'gpu'"):
        pub.send({"kind": "gpu", "host": "h", "ts": "2024-06-03T08:00:00Z"})
    with pytest.raises(ValueError, match="unknown event kind"):
        FleetPublisher({"bootstrap.servers": embedded_broker}, {"metrics": "t.y"})


def test_simulate_to_kafka_cli_publishes_every_event(
    embedded_broker: str,
    topic_name: str,
    consume_all: Callable[..., list[Record]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topics = _topics(topic_name)
    monkeypatch.setenv("LLMWATCH_BOOTSTRAP_SERVERS", embedded_broker)
    for kind, topic in topics.items():
        monkeypatch.setenv(f"LLMWATCH_TOPIC_{kind.upper()}", topic)
    args = ["simulate", "--to-kafka", "--duration", "40s", "--rate", "10", "--hosts", "3"]
    assert main([*args, "--gpus-per-host", "1", "--realtime", "--speed", "200"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("done: sent "))
    total = int(line.removeprefix("done: sent ").split()[0].replace(",", ""))
    assert f"delivered {total:,}, failed 0, undelivered 0" in line
    records = [r for t in topics.values() for r in consume_all(t)]
    assert len(records) == total > 0
    # --realtime stamps relative to now, so a live worker accepts them.
    newest = max(event_time(orjson.loads(r.value)) for r in records)
    assert abs(newest - datetime.now(UTC).timestamp()) < 60


def test_simulate_needs_out_or_to_kafka(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--duration", "10s"]) == 2
    assert "--out: required unless --to-kafka" in capsys.readouterr().err
    assert main(["simulate", "--out", "x", "--realtime"]) == 2
    assert "--realtime: only with --to-kafka" in capsys.readouterr().err
