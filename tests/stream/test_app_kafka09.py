"""Old-broker support (stream.kafka09) and the worker's offset bookkeeping (Progress)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from stream.app import engine_table, worker_topics
from stream.kafka09 import (
    CreateTopicsUnsupported,
    apply_aiokafka_shim,
    ensure_topics,
    faust_broker_options,
    is_legacy,
    kafka_topics_commands,
)
from stream.settings import Settings
from stream.worker.state import EngineStateTable, Progress


def test_worker_topics_cover_sources_outputs_and_compacted_changelog() -> None:
    settings = Settings(partitions=3)
    specs = {s.name: s for s in worker_topics(settings, "wk")}
    changelog = f"wk-{engine_table('wk')}-changelog"
    assert changelog == "wk-wk-engines-changelog"  # Faust's <app_id>-<table>-changelog
    for name in (
        settings.topic_inference,
        settings.topic_gpu,
        settings.topic_metrics,
        settings.topic_feedback,
        settings.topic_alerts,
        settings.topic_deadletter,
        settings.topic_silences,
        changelog,
    ):
        assert specs[name].partitions == 3
    assert specs[changelog].config == {"cleanup.policy": "compact"}
    assert specs[settings.topic_silences].config == {"cleanup.policy": "compact"}
    assert specs[settings.topic_inference].config == {}


def test_kafka_topics_lines_use_zookeeper_for_old_brokers() -> None:
    specs = worker_topics(Settings(partitions=2))
    lines = kafka_topics_commands(specs, zookeeper="zk:2181", bootstrap="b:9092")
    assert len(lines) == len(specs)
    assert all(line.startswith("kafka-topics.sh --zookeeper zk:2181 --create") for line in lines)
    assert any(line.endswith("--config cleanup.policy=compact") for line in lines)
    modern = kafka_topics_commands(specs, zookeeper=None, bootstrap="b:9092", replication=3)
    assert all("--bootstrap-server b:9092" in x and "--replication-factor 3" in x for x in modern)


def test_legacy_brokers_get_no_create_topics_and_the_shim_only_for_them() -> None:
    old = Settings(bootstrap_servers="h:9092", broker_api_version="0.9")
    new = Settings(bootstrap_servers="h:9092", broker_api_version="2.8")
    assert is_legacy(old) and not is_legacy(new) and not is_legacy(Settings())
    with pytest.raises(CreateTopicsUnsupported, match=r"kafka-topics\.sh"):
        ensure_topics(old, worker_topics(old))
    assert apply_aiokafka_shim(new) is False
    assert apply_aiokafka_shim(Settings()) is False


def test_faust_options_pass_version_and_sasl_without_leaking_secret() -> None:
    settings = Settings(
        bootstrap_servers="h:9092",
        broker_api_version="0.9",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="svc",
        sasl_password="s3cret",  # type: ignore[arg-type]
    )
    opts = faust_broker_options(settings)
    assert opts["broker_api_version"] == "0.9"
    creds = opts["broker_credentials"]
    assert creds.username == "svc" and creds.password == "s3cret"
    assert creds.mechanism.value == "SCRAM-SHA-256"
    assert "s3cret" not in repr(creds)
    assert faust_broker_options(Settings()) == {}


@dataclass
class Msg:
    offset: int
    partition: int = 0


@dataclass
class Ev:
    message: Msg
    acked: bool = False

    def ack(self) -> bool:
        self.acked = True
        return True


@dataclass
class Table:
    data: dict[bytes, bytes] = field(default_factory=dict)

    def send_changelog(self, *args: object, **kwargs: object) -> None:
        pass


def _events(*offsets: int) -> list[Ev]:
    return [Ev(Msg(o)) for o in offsets]


def test_progress_drops_what_the_snapshot_holds_and_acks_only_after_a_save() -> None:
    state = EngineStateTable(Table())
    state.save(0, b"snapshot", {"t": 4})
    progress = Progress(state)
    assert progress.seen([0]) == {("t", 0): 4}  # before any batch: from the manifest
    batch = _events(3, 4, 5, 6)
    progress.hold(0, batch)
    fresh = progress.fresh("t", 0, batch)
    assert [e.message.offset for e in fresh] == [5, 6]
    assert [e.acked for e in batch] == [True, True, False, False]  # replayed: acked now
    progress.advance("t", 0, 6)
    assert progress.offsets(0) == {"t": 6}
    progress.release([0])
    assert all(e.acked for e in batch)
    progress.forget([0])
    assert progress.offsets(0) == {} and progress.seen([0]) == {("t", 0): 4}
