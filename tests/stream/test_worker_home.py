"""The worker's / page links its endpoints and the notifier's web console."""

from __future__ import annotations

import pytest

from stream.settings import SettingsError, load_settings
from stream.worker.home import console_url, home_page


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("worker-0:6066", "http://worker-0:6067/"),
        ("10.0.0.5:6066", "http://10.0.0.5:6067/"),
        ("[::1]:6066", "http://[::1]:6067/"),
        ("localhost", "http://localhost:6067/"),
        ("", "http://127.0.0.1:6067/"),
    ],
)
def test_the_console_is_on_this_host_at_the_notifier_port(host: str, expected: str) -> None:
    assert console_url("", host, 6067) == expected


def test_a_configured_console_url_wins_and_must_be_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert console_url("https://console.example/", "worker:6066", 6067) == (
        "https://console.example/"
    )
    monkeypatch.setenv("LLMWATCH_CONSOLE_URL", "https://console.example/")
    assert load_settings().console_url == "https://console.example/"
    monkeypatch.setenv("LLMWATCH_CONSOLE_URL", "console.example")
    with pytest.raises(SettingsError, match="LLMWATCH_CONSOLE_URL: must be an http"):
        load_settings()


def test_the_page_links_everything_and_escapes_what_it_is_given() -> None:
    page = home_page("app<1>", 'http://h:6067/?a="b"')
    for link in ('href="/healthz"', 'href="/metrics"', 'href="/alerts"'):
        assert link in page
    assert 'href="http://h:6067/?a=&quot;b&quot;"' in page
    assert "app&lt;1&gt;" in page and "app<1>" not in page
