"""The notifier's YAML: receivers, routing, and where secrets may come from."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from connectors.notify import PagerDutyNotifier, SlackBotNotifier, WebhookNotifier
from stream.notify import NotifyConfigError, default_config, load_config
from stream.notify.receivers import build_notifier, env_receivers, known_secrets
from stream.settings import Settings

GOOD = """
receivers:
  - {name: oncall, type: pagerduty, routing_key_file: KEYFILE}
  - {name: chat, type: slack_bot, channel: C123}
  - {name: audit, type: webhook, rate_per_s: 5, send_resolved: false}
route:
  receiver: chat
  routes:
    - matchers: ['severity="critical"']
      receiver: oncall
      continue: true
    - matchers: ['detector=~"gpu_.*"']
      receiver: audit
retry: {deadline_s: 900}
max_in_flight: 500
"""


def _write(tmp_path: Path, text: str) -> Path:
    key = tmp_path / "pd.key"
    key.write_text("file-routing-key-0123456789\n")
    path = tmp_path / "notify.yaml"
    path.write_text(text.replace("KEYFILE", str(key)))
    return path


def test_a_good_file_builds_every_receiver(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    settings = Settings(
        slack_bot_token=SecretStr("xoxb-env-token"),
        webhook_url=SecretStr("https://hooks.example/abc"),
    )
    built = {s.name: build_notifier(s, settings, tmp_path, None) for s in config.receivers}
    assert isinstance(built["oncall"], PagerDutyNotifier)
    assert isinstance(built["chat"], SlackBotNotifier)
    assert isinstance(built["audit"], WebhookNotifier)
    assert config.max_in_flight == 500 and config.retry.deadline_s == 900
    assert config.quiet_on_resolve == {"audit"}  # send_resolved: false; on by default
    secrets = {s.get_secret_value() for s in known_secrets(settings, list(config.receivers))}
    assert {"file-routing-key-0123456789", "xoxb-env-token"} <= secrets


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "receivers: [{name: p, type: pagerduty, routing_key: abc}]\nroute: {receiver: p}",
            "receivers[0]: routing_key: secrets may not be written in the config file",
        ),
        (
            "receivers: [{name: h, type: webhook, url: 'https://x/y'}]\nroute: {receiver: h}",
            "receivers[0]: url: secrets may not be written",
        ),
        (
            "receivers: [{name: c, type: console}]\nroute: {receiver: c, routes: [{receiver: x}]}",
            "route.routes[0].receiver: unknown receiver 'x'",
        ),
        ("receivers: [{name: c, type: carrier_pigeon}]\nroute: {receiver: c}", "receivers[0]"),
        ("receivers: [{name: c, type: console}]\nroute: {}", "root route needs a default"),
        ("receivers: []\nroute: {receiver: c}", "receivers:"),
        (
            "receivers: [{name: c, type: console}, {name: c, type: console}]\nroute: {receiver: c}",
            "duplicate name(s) c",
        ),
        ("receivers: [{name: c, type: console}]\nroute: {receiver: c}\nmax_in_flight: 0", "max_in"),
        (
            "receivers: [{name: c, type: console, send_resolved: maybe}]\nroute: {receiver: c}",
            "receivers[0].send_resolved: Input should be a valid boolean",
        ),
        ("- just\n- a list", "expected a mapping"),
        ("receivers: [", "not valid YAML"),
    ],
)
def test_a_bad_file_fails_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(NotifyConfigError) as err:
        load_config(_write(tmp_path, text))
    assert message in str(err.value)
    assert "abc" not in str(err.value).replace("routing_key", "")


def test_a_missing_secret_names_the_variable_and_never_the_value(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    with pytest.raises(NotifyConfigError, match=r"receivers\[chat\].token: .*LLMWATCH_SLACK_BOT"):
        build_notifier(config.receivers[1], Settings(), tmp_path, None)
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    bad = GOOD.replace("KEYFILE", str(empty))
    with pytest.raises(NotifyConfigError, match=r"routing_key: .* is empty"):
        spec = load_config(_write(tmp_path, bad)).receivers[0]
        build_notifier(spec, Settings(), tmp_path, None)
    with pytest.raises(NotifyConfigError, match="notify_config: cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_without_a_file_receivers_come_from_the_environment_plus_console() -> None:
    assert [r.name for r in default_config().receivers] == ["console"]
    settings = Settings(
        pagerduty_routing_key=SecretStr("k" * 32),
        slack_webhook_url=SecretStr(""),  # compose passes unset ones as empty: off
        webhook_url=SecretStr("https://hooks.example/x"),
    )
    config = default_config(env_receivers(settings))
    assert [r.name for r in config.receivers] == ["pagerduty", "webhook", "console"]
    from stream.alerting.labels import alert_labels
    from stream.alerting.route import Router
    from tests.connectors.notify_fakes import make_alert

    assert Router(config.route).receivers_for(alert_labels(make_alert())) == [
        "pagerduty",
        "webhook",
        "console",
    ]
    # The shipped inhibit rules come with it.
    assert config.inhibit_rules[0].name == "gpu-unhealthy-holds-host-symptoms"


def test_links_point_at_the_console_without_any_setup() -> None:
    import socket

    from stream.notify.config import NotifyConfig, external_url_of
    from stream.settings import Settings

    bare = NotifyConfig.model_validate(
        {"receivers": [{"name": "c", "type": "console"}], "route": {"receiver": "c"}}
    )
    settings = Settings(notify_web_port=7070)
    assert external_url_of(bare, settings) == f"http://{socket.getfqdn()}:7070"
    set_env = Settings(console_url="https://llmwatch.example/")
    assert external_url_of(bare, set_env) == "https://llmwatch.example/"
    chosen = bare.model_copy(update={"external_url": "https://ops.example"})
    assert external_url_of(chosen, set_env) == "https://ops.example"
