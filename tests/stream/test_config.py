"""Config files: defaults, YAML and TOML, errors that name the field, dump/load round trip."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from pydantic import BaseModel

from detectors.config import detector_classes
from stream.config import ConfigError, LlmwatchConfig, dump_config, load_config, parse_config
from stream.lifecycle_config import LifecycleConfig

REPO = Path(__file__).resolve().parents[2]


def test_no_path_means_every_default() -> None:
    cfg = load_config(None)
    assert cfg == LlmwatchConfig()
    assert cfg.lifecycle == LifecycleConfig()
    assert set(type(cast(BaseModel, cfg.detectors)).model_fields) == set(detector_classes())
    assert cfg.lifecycle.defaults.fire_threshold > cfg.lifecycle.defaults.resolve_threshold


def test_yaml_file(tmp_path: Path) -> None:
    p = tmp_path / "llmwatch.yml"
    p.write_text(
        "lifecycle:\n"
        "  defaults: {for_s: 45}\n"
        "  rules:\n"
        "    latency: {keep_firing_for_s: 90, runbook_url: 'https://rb/{alertname}'}\n"
        "  grouping: {group_by: [host]}\n"
    )
    cfg = load_config(p)
    assert cfg.lifecycle.defaults.for_s == 45.0
    rule = cfg.lifecycle.rule_for("latency")
    assert rule.for_s == 45.0 and rule.keep_firing_for_s == 90.0
    assert rule.runbook_url == "https://rb/{alertname}"
    assert cfg.lifecycle.rule_for("drift").keep_firing_for_s == 0.0
    assert cfg.lifecycle.grouping.group_by == ["host"]


def test_toml_file(tmp_path: Path) -> None:
    p = tmp_path / "llmwatch.toml"
    p.write_text(
        "[lifecycle]\nresolve_timeout_s = 600\n\n"
        "[[lifecycle.inhibit_rules]]\n"
        "source_matchers = ['severity=\"critical\"']\n"
        "target_matchers = ['severity=~\"warning|info\"']\n"
        "equal = ['model']\n"
    )
    cfg = load_config(str(p))
    assert cfg.lifecycle.resolve_timeout_s == 600.0
    (rule,) = cfg.lifecycle.inhibit_rules
    assert str(rule.source_matchers[0]) == 'severity="critical"'
    assert rule.target_matchers[0].matches({"severity": "info"})


def test_empty_yaml_file_is_all_defaults(tmp_path: Path) -> None:
    p = tmp_path / "empty.yaml"
    p.write_text("# nothing here\n")
    assert load_config(p) == LlmwatchConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "lifecycle:\n  defaults:\n    for_s: -1\n",
            "lifecycle.defaults.for_s: Input should be greater than or equal to 0",
        ),
        (
            "lifecycle:\n  resolve_timeout_s: 0\n",
            "lifecycle.resolve_timeout_s: Input should be greater than 0",
        ),
        (
            "lifecycle:\n  grouping:\n    group_wait: 3\n",
            "lifecycle.grouping.group_wait: Extra inputs are not permitted",
        ),
        (
            "detectors:\n  no_such_detector: {}\n",
            "detectors.no_such_detector: Extra inputs are not permitted",
        ),
        (
            "lifecycle:\n  defaults: {fire_threshold: 0.3, resolve_threshold: 0.4}\n",
            "lifecycle.defaults: resolve_threshold (0.4) must not exceed",
        ),
        (
            "lifecycle:\n  rules: {latency: {resolve_threshold: 0.9}}\n",
            "lifecycle.rules: latency: resolve_threshold (0.9) must not exceed",
        ),
        (
            "lifecycle:\n  inhibit_rules: [{source_matchers: [oops], target_matchers: []}]\n",
            "lifecycle.inhibit_rules.0.source_matchers.0: not a label matcher",
        ),
        ("- just\n- a list\n", "the top level must be a mapping"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert message in str(info.value)
    assert str(p) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_detector_field_is_named_with_its_section() -> None:
    with pytest.raises(ConfigError, match=r"detectors\.ghost: Extra inputs are not permitted"):
        parse_config({"detectors": {"ghost": {"enabled": True}}})
    for name, cls in detector_classes().items():
        numeric = [
            f for f, info in cls.Config.model_fields.items() if info.annotation in (float, int)
        ]
        if numeric:
            with pytest.raises(ConfigError, match=rf"detectors\.{name}\.{numeric[0]}: "):
                parse_config({"detectors": {name: {numeric[0]: "not a number"}}})
    for name in detector_classes():
        with pytest.raises(ConfigError, match=rf"detectors\.{name}\.enabled: Input should be"):
            parse_config({"detectors": {name: {"enabled": "maybe"}}})


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("c.json", "{}", "are .yaml, .yml or .toml"),
        ("c.yaml", "a: [unclosed\n", "not valid YAML"),
        ("c.toml", "a = \n", "not valid TOML"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(p)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


def test_dump_then_load_gives_the_same_config(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "detectors": {n: {"enabled": False} for n in list(detector_classes())[:1]},
            "lifecycle": {
                "defaults": {"for_s": 12.5, "dashboard_url": "https://d/{model}"},
                "rules": {"gpu_health": {"for_s": 0}},
            },
        }
    )
    text = dump_config(cfg)
    p = tmp_path / "dumped.yaml"
    p.write_text(text)
    again = load_config(p)
    assert again == cfg
    assert dump_config(again) == text
    assert dump_config(load_config(None)) == dump_config(LlmwatchConfig())


def test_example_config_in_repo_loads_and_differs_from_defaults() -> None:
    cfg = load_config(REPO / "llmwatch.example.yaml")
    assert cfg.lifecycle.rule_for("gpu_health").for_s == 0.0
    assert cfg.lifecycle.rule_for("latency").keep_firing_for_s == 120.0
    assert cfg.lifecycle.inhibit_rules == LifecycleConfig().inhibit_rules
    assert load_config(REPO / "llmwatch.example.yaml") == cfg


def test_config_rules_lay_over_the_shipped_rules_field_by_field() -> None:
    from stream.lifecycle_config import default_rules

    shipped = default_rules()
    assert shipped, "the shipped config has per-detector rules to keep"
    name, rule = next(iter(shipped.items()))
    cfg = parse_config(
        {"lifecycle": {"rules": {"latency": {"for_s": 90}, name: {"keep_firing_for_s": 7}}}}
    )
    rules = cfg.lifecycle.rules
    assert rules["latency"].for_s == 90
    assert rules[name].keep_firing_for_s == 7
    assert rules[name].for_s == rule.for_s  # not dropped by naming another field
    for other in shipped.keys() - {name}:
        assert rules[other] == shipped[other]
    assert parse_config({}).lifecycle.rules == shipped


def test_settings_nothing_reads_load_with_a_warning_each_and_are_not_dumped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = tmp_path / "old.yaml"
    p.write_text("lifecycle:\n  grouping: {group_by: [host]}\n  ack_ttl_s: 60\n")
    with caplog.at_level("WARNING", logger="stream.config"):
        cfg = load_config(p)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2, warned
    assert "lifecycle.grouping: grouping is the notifier's" in warned[0]
    assert "lifecycle.ack_ttl_s" in warned[1] and str(p) in warned[1]
    assert "grouping" not in dump_config(cfg) and "ack_ttl_s" not in dump_config(cfg)
    caplog.clear()
    with caplog.at_level("WARNING", logger="stream.config"):
        load_config(REPO / "llmwatch.example.yaml")
    assert not caplog.records
