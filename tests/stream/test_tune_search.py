"""``llmwatch tune`` writes a best.yaml that load_config reads, and a trade-off report."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from stream.cli import main
from stream.config import LlmwatchConfig, load_config
from stream.replay.tune import SPACE, apply, objective, usable_space
from stream.simulate import FleetSpec, default_incidents, write


def test_apply_keeps_hysteresis_valid_and_space_exists() -> None:
    base = LlmwatchConfig()
    space = usable_space(base)
    assert "lifecycle.defaults.for_s" in space and set(space) <= set(SPACE)
    cfg = apply(base, {"lifecycle.defaults.fire_threshold": 0.3, "lifecycle.defaults.for_s": 5.0})
    assert cfg.lifecycle.defaults.fire_threshold == 0.3
    assert cfg.lifecycle.defaults.resolve_threshold <= 0.3
    assert cfg.lifecycle.defaults.for_s == 5.0


def test_trials_do_not_warn_about_outgrown_settings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A base file setting something nothing reads any more (kept so it loads) is warned
    # about once, when it is loaded; the trials built from it neither warn again (every
    # trial used to, four lines each, even on the defaults) nor carry the setting.
    path = tmp_path / "old.yaml"
    path.write_text("lifecycle:\n  ack_ttl_s: 60\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="stream.config"):
        base = load_config(path)
    assert [r.getMessage() for r in caplog.records if "ignored setting" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stream.config"):
        for cfg in (apply(base, {"lifecycle.defaults.for_s": 5.0}), apply(LlmwatchConfig(), {})):
            assert "ack_ttl_s" not in cfg.lifecycle.model_fields_set
    assert not [r for r in caplog.records if "ignored setting" in r.getMessage()]


def test_objective_penalises_delay_and_false_alerts() -> None:
    s = {"f1": 0.8, "delay_s": {"p50": 50.0}, "false_alerts_per_series_day": 10.0}
    assert objective(s, 300) == 0.8 - 0.1 - 0.1
    assert objective({**s, "delay_s": {"p50": None}}, 300) < objective(s, 300)


def test_tune_cli_writes_loadable_best_yaml(tmp_path: Path) -> None:
    spec = FleetSpec(seed=202, duration_s=300.0, rate=40.0, hosts=3, gpus_per_host=2)
    files = write(spec, default_incidents(spec, 202), tmp_path / "fleet")
    assert files.events is not None
    out = tmp_path / "tune"
    rc = main(
        [
            "tune",
            "--events",
            str(files.events),
            "--labels",
            str(files.labels),
            "--trials",
            "2",
            "--seed",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    best = load_config(out / "best.yaml")
    assert isinstance(best, LlmwatchConfig)
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert [t["trial"] for t in trials] == [0, 1]
    assert trials[0]["params"] == {}  # trial 0 is the base config
    assert (out / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64," in (out / "tune.html").read_text()  # embedded
