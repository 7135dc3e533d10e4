"""Grafana dashboards: generated from build_dashboards.py, well-formed, and only query
metrics llmwatch exports."""

from __future__ import annotations

import importlib.util
import json
import re
from types import ModuleType

import yaml

from tests.deploy.deploy_support import (
    DASHBOARDS,
    DEPLOY,
    PROMETHEUS_SYNTHETIC,
    dashboard_exprs,
    exported_names,
    promql_metric_names,
)

_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*\w+\)$")


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_dashboards", DEPLOY / "grafana" / "build_dashboards.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dashboards_are_up_to_date() -> None:
    rendered = _builder().render()
    assert set(rendered) == {p.name for p in DASHBOARDS.glob("*.json")}
    for name, text in rendered.items():
        assert (DASHBOARDS / name).read_text() == text, (
            f"{name} is stale: run python deploy/grafana/build_dashboards.py"
        )


def test_dashboards_are_well_formed() -> None:
    uids = set()
    for path in DASHBOARDS.glob("*.json"):
        board = json.loads(path.read_text())
        assert board["uid"] not in uids
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
            if panel["type"] != "row":
                assert panel["targets"], panel["title"]
                assert panel["datasource"]["uid"] == "prometheus"
    assert uids == {"llmwatch-fleet", "llmwatch-service"}


def test_provisioned_datasource_is_the_one_dashboards_use() -> None:
    prov = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert prov["datasources"][0]["uid"] == "prometheus"


def test_dashboards_query_only_exported_metrics() -> None:
    known = exported_names() | PROMETHEUS_SYNTHETIC
    seen: set[str] = set()
    for name, exprs in dashboard_exprs().items():
        for expr in exprs:
            m = _LABEL_VALUES.match(expr)
            names = promql_metric_names(m.group(1) if m else expr)
            assert names, f"{name}: no metric in {expr!r}"
            assert names <= known, f"{name}: {names - known} are not exported by llmwatch"
            seen |= names
    # The service dashboard covers lag, rejects, batch time, alerts, notifier retries/DLQ.
    for needed in (
        "llmwatch_consumer_lag",
        "llmwatch_rejects_total",
        "llmwatch_batch_seconds_bucket",
        "llmwatch_alerts_total",
        "llmwatch_notify_retries_total",
        "llmwatch_fleet_latency_seconds",
        "llmwatch_fleet_baseline_seconds",
        "llmwatch_fleet_gpu_temperature_celsius",
    ):
        assert needed in seen


def test_name_parser_finds_names_and_ignores_labels() -> None:
    expr = 'sum by (topic) (rate(foo_total{job="a-b", x=~"y"}[5m])) / on(le) bar and up'
    assert promql_metric_names(expr) == {"foo_total", "bar", "up"}
