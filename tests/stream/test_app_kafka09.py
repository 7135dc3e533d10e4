"""Old-broker support (stream.kafka09)."""

from __future__ import annotations

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
