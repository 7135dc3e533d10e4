"""``llmwatch notify --check`` refuses receiver URLs that are not URLs, naming the field."""

from __future__ import annotations

import pytest

from stream.cli import main
from stream.settings import SettingsError, http_url_problem, load_settings

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
