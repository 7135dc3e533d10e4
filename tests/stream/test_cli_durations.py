"""One duration parser everywhere: every flag, setting and config field reads ``1h30m``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from stream.cli import build_parser
from stream.config import parse_config
from stream.notify.api_models import AckRequest, SilenceRequest
from stream.notify.config import parse_config as parse_notify_config
from stream.settings import load_settings

_DURATION_FLAGS = [
    ["simulate", "--duration"],
    ["broker", "--duration"],
    ["gpu-agent", "--interval"],
    ["gpu-agent", "--duration"],
    ["scrape", "--interval"],
    ["scrape", "--duration"],
    ["alerts", "tail", "--duration"],
    ["silence", "add", "--duration"],
    ["ack", "--expires"],
    ["demo", "--duration"],
    ["replay", "--grace"],
    ["worker", "--session-timeout"],
    ["worker", "--checkpoint-interval"],
]

_NEEDED = {
    "silence": ['detector="x"'],
    "ack": ["abc"],
    "replay": ["in.jsonl"],
    "scrape": ["--url", "http://127.0.0.1:1/metrics"],
}


@pytest.mark.parametrize("flag", _DURATION_FLAGS, ids=" ".join)
def test_every_duration_flag_reads_1h30m(flag: list[str]) -> None:
    argv = [*flag, "1h30m", *_NEEDED.get(flag[0], [])]
    args = build_parser().parse_args(argv)
    dest = flag[-1].lstrip("-").replace("-", "_")
    assert getattr(args, dest) == 5400.0


def test_settings_read_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMWATCH_SESSION_TIMEOUT_S", "1m30s")
    monkeypatch.setenv("LLMWATCH_CHECKPOINT_INTERVAL_S", "500ms")
    monkeypatch.setenv("LLMWATCH_BATCH_TIMEOUT_S", "250ms")
    s = load_settings()
    assert (s.session_timeout_s, s.checkpoint_interval_s, s.batch_timeout_s) == (90.0, 0.5, 0.25)


def test_config_file_reads_durations_in_detectors_and_lifecycle() -> None:
    config = parse_config(
        {
            "detectors": {"error_rate": {"window_half_life_s": "1h30m"}},
            "lifecycle": {
                "defaults": {"for_s": "1h30m"},
                "rules": {"latency": {"keep_firing_for_s": "2d"}},
                "grouping": {"group_wait_s": "500ms"},
                "resolve_timeout_s": "5m",
            },
        }
    )
    assert cast(Any, config.detectors).error_rate.window_half_life_s == 5400.0
    life = config.lifecycle
    assert life.defaults.for_s == 5400.0
    assert life.rule_for("latency").keep_firing_for_s == 172_800.0
    assert (life.grouping.group_wait_s, life.resolve_timeout_s) == (0.5, 300.0)


def test_a_bad_duration_in_a_config_file_names_the_field() -> None:
    with pytest.raises(
        ValueError, match=r"detectors.error_rate.window_half_life_s: not a duration: '1h30x'"
    ) as info:
        parse_config({"detectors": {"error_rate": {"window_half_life_s": "1h30x"}}})
    assert "Value error" not in str(info.value)


def test_notifier_config_and_api_read_durations(tmp_path: Path) -> None:
    config = parse_notify_config(
        {
            "receivers": [{"name": "c", "type": "console", "timeout_s": "1m30s"}],
            "route": {"receiver": "c"},
            "retry": {"cap_s": "1h30m"},
            "default_ack_ttl_s": "2d",
        }
    )
    assert config.receivers[0].timeout_s == 90.0
    assert config.retry.cap_s == 5400.0 and config.default_ack_ttl_s == 172_800.0
    silence = SilenceRequest.model_validate(
        {"matchers": ['detector="x"'], "created_by": "me", "duration": "1h30m"}
    )
    assert silence.duration == 5400.0
    ack = AckRequest.model_validate({"fingerprint": "f", "by": "me", "expires_in": "1h30m"})
    assert ack.expires_in_s == 5400.0
