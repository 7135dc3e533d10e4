"""``llmwatch notify --check`` refuses receiver URLs that are not URLs, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.cli import main
from stream.settings import SettingsError, http_url_problem, load_settings

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hooks.example.com/T000/very-secret-path"


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("LLMWATCH_WEBHOOK_URL", "not-a-url", "must be an http:// or https:// URL"),
        ("LLMWATCH_WEBHOOK_URL", f"ftp://{SECRET}", "must be an http:// or https:// URL"),
        ("LLMWATCH_SLACK_WEBHOOK_URL", "https:///T000/very-secret-path", "with a host"),
        ("LLMWATCH_SLACK_WEBHOOK_URL", f"https://{SECRET.replace('.com', '.com:9x')}", "bad port"),
        ("LLMWATCH_WEBHOOK_URL", f"https://{SECRET} x", "spaces"),
    ],
)
def test_notify_check_names_a_bad_url_and_not_its_value(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    problem: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["notify", "--check"]) == 2
    err = capsys.readouterr().err
    assert f"{variable}: " in err and problem in err
    assert "very-secret-path" not in err and "not-a-url" not in err
    assert "Value error" not in err


def test_good_and_empty_urls_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMWATCH_WEBHOOK_URL", "https://hooks.example.com:8443/in?x=1")
    monkeypatch.setenv("LLMWATCH_SLACK_WEBHOOK_URL", "")  # compose's "receiver off"
    settings = load_settings()
    assert settings.webhook_url is not None
    assert http_url_problem("http://[::1]:9000/hook") is None


def test_every_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMWATCH_WEBHOOK_URL", "nope")
    monkeypatch.setenv("LLMWATCH_SLACK_WEBHOOK_URL", "nope")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "LLMWATCH_WEBHOOK_URL" in str(info.value)
    assert "LLMWATCH_SLACK_WEBHOOK_URL" in str(info.value)


def test_a_bad_notifier_file_reports_every_problem_one_per_line_as_the_docs_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "notify.yaml"
    bad.write_text(
        "receivers:\n  - {name: pd, type: pagerduty, timeout_s: 900}\n"
        "route: {receiver: pd}\nretry: {cap_s: soon}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["notify", "--check", "--config", "notify.yaml"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "llmwatch notify: error: notify.yaml: 2 problems:",
        "  receivers[0].timeout_s: Input should be less than or equal to 300",
        "  retry.cap_s: not a duration: 'soon' (use e.g. 500ms, 90s, 10m, 1h30m, 2d)",
    ]
    doc = (ROOT / "docs" / "notifier.md").read_text()
    assert "\n".join(err) in doc  # the page shows what the command prints
    assert "`alertname` (the title)" not in doc


@pytest.mark.parametrize(
    ("receiver", "field"),
    [
        ("{name: pd, type: pagerduty, api_url: events.pagerduty.com/v2/enqueue}", "api_url"),
        ("{name: pd, type: pagerduty, client_url: 'ftp://console'}", "client_url"),
        ("{name: sb, type: slack_bot, channel: c, api_base_url: 'slack.com/api/'}", "api_base_url"),
        ("{name: wh, type: webhook, external_url: 'http://'}", "external_url"),
    ],
)
def test_notify_check_refuses_a_receiver_url_that_is_not_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], receiver: str, field: str
) -> None:
    conf = tmp_path / "notify.yaml"
    name = receiver.split(",")[0].split(":")[1].strip()
    conf.write_text(f"receivers:\n  - {receiver}\nroute: {{receiver: {name}}}\n")
    assert main(["notify", "--check", "--config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert f"receivers[0].{field}: must be an http" in err, err
