"""Prometheus naming: the worker's and notifier's /metrics pass ``promtool check metrics``,
and the deprecated names live on for one release as recording rules (promtool-tested)."""

from __future__ import annotations

import subprocess

from stream.metrics import NotifierMetrics, WorkerMetrics, render
from tests.deploy.deploy_support import ALIAS_RULES, DEPLOY, populated_registry, tool


def _check_metrics(text: bytes) -> str:
    proc = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return (proc.stdout + proc.stderr).decode()


def test_every_worker_and_notifier_metric_passes_promtool() -> None:
    # One registry with every metric of both, each with a sample (deploy_support).
    text = render(populated_registry())
    assert b"llmwatch_fleet_baseline_seconds{" in text
    assert b"_created" not in text
    assert _check_metrics(text) == ""


def test_promtool_catches_what_the_old_names_did() -> None:
    # The check is live: the names this release retired are flagged by the same tool.
    bad = (
        b"# HELP llmwatch_fleet_latency_ms x\n# TYPE llmwatch_fleet_latency_ms gauge\n"
        b'llmwatch_fleet_latency_ms{quantile="0.5"} 1\n'
    )
    out = _check_metrics(bad)
    assert "abbreviated units" in out and "quantile" in out


def test_fresh_registries_render_without_created_series() -> None:
    w, n = WorkerMetrics(), NotifierMetrics()
    w.events_in.labels("t").inc()
    n.alerts_in.inc()
    for text in (w.render(), n.render()):
        assert b"_created" not in text
        assert _check_metrics(text) == ""


def test_alias_rules_check_and_compute_the_old_names() -> None:
    for args in (
        ["check", "rules", str(ALIAS_RULES)],
        ["test", "rules", str(DEPLOY / "prometheus" / "tests" / "llmwatch_aliases_test.yml")],
    ):
        proc = subprocess.run(
            [tool("promtool"), *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
