"""Prometheus rules and scrape config, checked by promtool and by a real Prometheus.

The live test serves llmwatch's own metric registries over HTTP, starts the
Debian ``prometheus`` binary against it with the shipped rules, and asserts
the target is scraped and every rule evaluates without error.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    DEPLOY,
    PROMETHEUS_SYNTHETIC,
    RULES,
    exported_names,
    populated_registry,
    promql_metric_names,
    rule_groups,
    tool,
)
from prometheus_client import generate_latest


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


class _Metrics(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def metrics_server() -> Iterator[str]:
    _Metrics.body = generate_latest(populated_registry())
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _api(base: str, path: str) -> Any:
    with urllib.request.urlopen(f"{base}{path}", timeout=5) as resp:
        return json.loads(resp.read())["data"]


def _until(deadline: float, probe: Any) -> Any:
    # Waits on an external process's progress, not on wall time: returns as soon as ready.
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"prometheus did not get there in time; last answer: {last}")


def test_real_prometheus_scrapes_llmwatch_and_evaluates_rules(
    tmp_path: Path, metrics_server: str
) -> None:
    port = _free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "llmwatch-worker", "static_configs": [{"targets": [metrics_server]}]}
        ],
    }
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        targets = _until(
            deadline,
            lambda: [
                t for t in _api(base, "/api/v1/targets")["activeTargets"] if t["health"] == "up"
            ],
        )
        assert targets[0]["labels"]["job"] == "llmwatch-worker"

        def all_evaluated() -> list[dict[str, Any]]:
            rules = [r for g in _api(base, "/api/v1/rules")["groups"] for r in g["rules"]]
            done = all(r["lastEvaluation"] > "2000" for r in rules)
            recorded = _api(base, "/api/v1/query?query=llmwatch:consumer_lag:sum")["result"]
            return rules if done and recorded else []

        rules = _until(deadline, all_evaluated)
        expected = sum(len(g["rules"]) for g in rule_groups())
        assert len(rules) == expected
        broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
        assert not broken
        lag = _api(base, "/api/v1/query?query=llmwatch:consumer_lag:sum")["result"]
        assert float(lag[0]["value"][1]) == 50_000
        # No notifier job is scraped here: its absent() alert must be pending.
        states = {r["name"]: r.get("state") for r in rules if r["type"] == "alerting"}
        assert states["LlmwatchNotifierDown"] == "pending"
        assert states["LlmwatchWorkerDown"] == "inactive"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
