"""Shared helpers for tests/deploy: paths, required tools, exported metric names, PromQL names."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCS = ROOT / "docs"
RULES = DEPLOY / "prometheus" / "rules" / "llmwatch.yml"
ALIAS_RULES = DEPLOY / "prometheus" / "rules" / "llmwatch-aliases.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"

# Series Prometheus makes itself, not llmwatch.
PROMETHEUS_SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


def tool(name: str) -> str:
    """Path of a required tool; a missing one fails the test (run scripts/deploy-check-deps.sh)."""
    path = shutil.which(name)
    assert path is not None, f"{name} is not installed: run scripts/deploy-check-deps.sh"
    return path


def populated_registry() -> CollectorRegistry:
    """One registry holding every llmwatch metric, each with at least one sample: for the
    static checks (names, promtool). Whether real traffic fills every panel is
    test_deploy_panels_have_data.py's job."""
    from stream.metrics import NotifierMetrics, WorkerMetrics

    w = WorkerMetrics()
    f = w.fleet
    n = NotifierMetrics(w.registry)
    topic = "llmwatch.inference"
    w.events_in.labels(topic).inc(1000)
    w.events_accepted.labels(topic).inc(990)
    w.rejects.labels(topic, "latency_ms").inc(10)
    w.batch_seconds.labels(topic).observe(0.02)
    w.batch_size.labels(topic).observe(500)
    w.detector_seconds.labels("inference").observe(0.01)
    w.consumer_lag.labels(topic, "0").set(50_000)
    w.active_series.labels("latency").set(120)
    w.alerts.labels("firing", "critical").inc()
    w.active_alerts.labels("critical").set(1)
    w.checkpoints.inc()
    w.engines.set(4)
    w.watermark.set(1.7e9)
    series = ("llama-3-70b", "v2", "gw-eu")
    f.latency.labels(*series, "latency", "0.95").set(0.82)
    f.baseline.labels(*series, "latency", "upper", "0.99").set(0.9)
    f.requests.labels(*series, "ok").inc(100)
    for gauge in f.gpu.values():
        gauge.labels("node-1", "GPU-1").set(1.0)
    f.gpu_xid.labels("node-1", "GPU-1").inc()
    f.gpu_throttled.labels("node-1", "GPU-1").set(0)
    n.alerts_in.inc()
    n.deliveries.labels("slack", "sent").inc()
    n.retries.labels("slack").inc()
    n.delivery_seconds.labels("slack").observe(0.3)
    n.consumer_lag.labels("0").set(0)
    n.silenced.labels("slack").inc()
    n.oldest_undelivered.set(0)
    n.paused.set(0)
    n.active_silences.set(1)
    from connectors.otlp_bridge import BridgeStats
    from stream.otlp_bridge_web import bridge_registry

    bridge = BridgeStats(messages=10, spans=40, events=30, skipped=8, invalid_spans=2)
    bridge.dead_lettered, bridge.last_commit, bridge.lag = 1, 1.7e9, 0
    bridge_registry(lambda: bridge, w.registry)
    return w.registry


def exported_names() -> set[str]:
    """Every series name llmwatch's registries can expose, from the metric definitions."""
    names: set[str] = set()
    for family in populated_registry().collect():
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_LABELS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "le", "time"})
_DURATION = re.compile(r"\[[^\]]*\]")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (functions, labels, keywords and strings removed)."""
    text = _STRING.sub('""', expr)
    text = _LABELS.sub("", text)
    text = _GROUPING.sub("", text)
    text = _DURATION.sub("", text)
    found = set()
    for m in _IDENT.finditer(text):
        name = m.group(1)
        if name.lower() in _KEYWORDS or re.fullmatch(r"\d.*|e\d+", name):
            continue
        found.add(name)
    return found


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def dashboard_exprs() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
        exprs += [v["query"]["query"] for v in board["templating"]["list"]]
        out[path.name] = exprs
    return out
