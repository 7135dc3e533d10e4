"""Settings: environment parsing, field-named errors, secrets kept out of text."""

from __future__ import annotations

import pytest

from stream.settings import (
    Settings,
    SettingsError,
    kafka_client_config,
    load_settings,
    redacted,
)


def test_defaults_name_the_llmwatch_topics_and_use_the_embedded_broker() -> None:
    s = Settings()
    assert s.bootstrap_servers == ""
    assert s.uses_embedded_broker
    assert (s.topic_inference, s.topic_gpu, s.topic_metrics) == (
        "llmwatch.inference",
        "llmwatch.gpu",
        "llmwatch.metrics",
    )
    assert (s.topic_feedback, s.topic_alerts, s.topic_deadletter) == (
        "llmwatch.feedback",
        "llmwatch.alerts",
        "llmwatch.deadletter",
    )
    assert s.store == "rocksdb://"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMWATCH_BOOTSTRAP_SERVERS", " kafka-0:9092, kafka-1:9092 ")
    monkeypatch.setenv("LLMWATCH_TOPIC_GPU", "fleet.gpu")
    monkeypatch.setenv("LLMWATCH_STORE", "memory")
    monkeypatch.setenv("LLMWATCH_BATCH_SIZE", "250")
    monkeypatch.setenv("LLMWATCH_WEB_PORT", "7000")
    s = load_settings()
    assert s.bootstrap_servers == "kafka-0:9092,kafka-1:9092"
    assert s.topic_gpu == "fleet.gpu"
    assert s.store == "memory://"
    assert s.batch_size == 250
    assert s.web_port == 7000
    assert not s.uses_embedded_broker


@pytest.mark.parametrize(
    ("var", "value", "named"),
    [
        ("LLMWATCH_WEB_PORT", "70000", "LLMWATCH_WEB_PORT"),
        ("LLMWATCH_BATCH_SIZE", "0", "LLMWATCH_BATCH_SIZE"),
        ("LLMWATCH_STORE", "redis", "LLMWATCH_STORE"),
        ("LLMWATCH_BOOTSTRAP_SERVERS", "kafka-without-port", "LLMWATCH_BOOTSTRAP_SERVERS"),
        ("LLMWATCH_TOPIC_ALERTS", "bad topic!", "LLMWATCH_TOPIC_ALERTS"),
        ("LLMWATCH_SECURITY_PROTOCOL", "TLS", "LLMWATCH_SECURITY_PROTOCOL"),
    ],
)
def test_bad_values_fail_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, named: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert named in str(info.value)


def test_secrets_reach_the_client_config_only(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "hunter2-very-secret"
    monkeypatch.setenv("LLMWATCH_BOOTSTRAP_SERVERS", "broker:9093")
    monkeypatch.setenv("LLMWATCH_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LLMWATCH_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("LLMWATCH_SASL_USERNAME", "llmwatch")
    monkeypatch.setenv("LLMWATCH_SASL_PASSWORD", secret)
    s = load_settings()
    assert secret not in repr(s) and secret not in str(s.model_dump())
    conf = kafka_client_config(s)
    assert conf["sasl.password"] == secret
    assert conf["security.protocol"] == "sasl_ssl"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert secret not in str(redacted(conf))


def test_sasl_without_password_fails_without_echoing_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMWATCH_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LLMWATCH_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("LLMWATCH_SASL_USERNAME", "someone")
    with pytest.raises(SettingsError, match="sasl_password"):
        load_settings()


def test_missing_tls_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("LLMWATCH_SSL_CAFILE", "/nonexistent/ca.pem")
    with pytest.raises(SettingsError, match="LLMWATCH_SSL_CAFILE"):
        load_settings()


def test_client_config_needs_brokers() -> None:
    with pytest.raises(ValueError, match="bootstrap_servers"):
        kafka_client_config(Settings())


def test_deploy_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMWATCH_CONFIG", "/etc/llmwatch/config.yaml")
    monkeypatch.setenv("LLMWATCH_HOST", "gpu-node-3")
    monkeypatch.setenv("LLMWATCH_LOG_LEVEL", "INFO")
    monkeypatch.setenv("LLMWATCH_SLACK_BOT_TOKEN", "xoxb-not-for-logs")
    s = load_settings()
    assert str(s.config) == "/etc/llmwatch/config.yaml"
    assert (s.host, s.log_level) == ("gpu-node-3", "info")
    assert s.slack_bot_token is not None and "xoxb" not in repr(s)
    assert s.slack_bot_token.get_secret_value() == "xoxb-not-for-logs"
