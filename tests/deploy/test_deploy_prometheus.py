"""Prometheus rules and scrape config, checked by promtool.

A real Prometheus scraping a real worker and notifier, evaluating every rule and
every dashboard query: test_deploy_panels_have_data.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.deploy.deploy_support import (
    DEPLOY,
    PROMETHEUS_SYNTHETIC,
    RULES,
    exported_names,
    promql_metric_names,
    rule_groups,
    tool,
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_accepts_rules_and_config() -> None:
    rules = _promtool("check", "rules", str(RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = _promtool(
        "check", "config", "--syntax-only", str(DEPLOY / "prometheus" / "prometheus.yml")
    )
    assert config.returncode == 0, config.stdout + config.stderr


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("groups: [{name: x, rules: [{alert: A, expr: 'sum(('}]}]\n")
    assert _promtool("check", "rules", str(bad)).returncode != 0


def test_rule_unit_tests_fire_the_expected_alerts() -> None:
    proc = _promtool(
        "test", "rules", str(DEPLOY / "prometheus" / "tests" / "llmwatch_rules_test.yml")
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_rules_use_only_exported_metrics() -> None:
    known = exported_names() | PROMETHEUS_SYNTHETIC
    recorded = {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}
    for group in rule_groups():
        for rule in group["rules"]:
            unknown = promql_metric_names(rule["expr"]) - known - recorded
            assert not unknown, f"{rule.get('alert') or rule.get('record')} reads {unknown}"


def test_every_alert_has_severity_and_summary() -> None:
    alerts = [r for g in rule_groups() for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 6
    for rule in alerts:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
