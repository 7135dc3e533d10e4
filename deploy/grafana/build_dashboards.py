"""Write the Grafana dashboards in deploy/grafana/dashboards/ from the panel lists below.

Run ``python deploy/grafana/build_dashboards.py`` after editing; tests/deploy fails
when the JSON files are stale, and checks every metric a panel queries is one
llmwatch exports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}
SERIES = 'model=~"$model", model_version=~"$version", gateway=~"$gateway"'


def _var(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": name},
        "definition": query,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "refresh": 2,
        "sort": 1,
    }


def _panel(
    title: str,
    exprs: list[tuple[str, str]],
    unit: str = "short",
    kind: str = "timeseries",
    desc: str = "",
) -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True}},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": DS}
            for i, (expr, legend) in enumerate(exprs)
        ],
    }


def _layout(rows: list[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    y = 0
    pid = 1
    for row_title, row in rows:
        panels.append(
            {
                "type": "row",
                "title": row_title,
                "id": pid,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid += 1
        y += 1
        width = 24 // min(len(row), 3)
        for i, p in enumerate(row):
            p["id"] = pid
            pid += 1
            p["gridPos"] = {"h": 8, "w": width, "x": (i % 3) * width, "y": y + (i // 3) * 8}
            panels.append(p)
        y += 8 * ((len(row) + 2) // 3)
    return panels


def _dashboard(
    uid: str,
    title: str,
    rows: list[tuple[str, list[dict[str, Any]]]],
    variables: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["llmwatch"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [],
        "panels": _layout(rows),
    }


def fleet() -> dict[str, Any]:
    def lat(metric: str, q: str) -> str:
        return (
            f'llmwatch_fleet_latency_seconds{{{SERIES}, metric="{metric}", quantile_level="{q}"}}'
        )

    def base(metric: str, bound: str) -> str:
        # The latency detector's baseline of its own quantile (p99 unless configured).
        return f'llmwatch_fleet_baseline_seconds{{{SERIES}, metric="{metric}", bound="{bound}"}}'

    err = f'rate(llmwatch_fleet_requests_total{{{SERIES}, status!="ok"}}[5m])'
    by = "sum by (model, model_version, gateway)"
    req = f"rate(llmwatch_fleet_requests_total{{{SERIES}}}[5m])"
    gpu = 'llmwatch_fleet_gpu_%s{host=~"$host"}'
    series = "{{model}} {{model_version}} @ {{gateway}}"
    dev = "{{host}} {{gpu_uuid}}"
    q = "p{{quantile_level}}"
    rows = [
        (
            "Latency against learned baselines",
            [
                _panel(
                    "p99 latency vs baseline",
                    [
                        (lat("latency", "0.99"), f"p99 {series}"),
                        (base("latency", "expected"), f"baseline {q} {series}"),
                        (base("latency", "upper"), f"alert bound {q} {series}"),
                    ],
                    unit="s",
                    desc="The latency detector compares its window's p99 with this baseline.",
                ),
                _panel(
                    "p50 / p95 / p99 latency",
                    [
                        (lat("latency", "0.5"), f"p50 {series}"),
                        (lat("latency", "0.95"), f"p95 {series}"),
                        (lat("latency", "0.99"), f"p99 {series}"),
                    ],
                    unit="s",
                ),
                _panel(
                    "Time to first token p99 vs baseline",
                    [
                        (lat("ttft", "0.99"), f"ttft p99 {series}"),
                        (lat("ttft", "0.95"), f"ttft p95 {series}"),
                        (base("ttft", "expected"), f"baseline {q} {series}"),
                        (base("ttft", "upper"), f"alert bound {q} {series}"),
                    ],
                    unit="s",
                ),
            ],
        ),
        (
            "Traffic and errors",
            [
                _panel(
                    "Requests per second",
                    [(f"sum by (model, model_version, gateway) ({req})", series)],
                    unit="reqps",
                ),
                _panel(
                    "Error rate",
                    [
                        (
                            f"{by} ({err}) / clamp_min({by} ({req}), 1e-9)",
                            series,
                        )
                    ],
                    unit="percentunit",
                ),
                _panel(
                    "Errors by status",
                    [
                        (
                            f"sum by (status) ({err})",
                            "{{status}}",
                        )
                    ],
                    unit="reqps",
                ),
            ],
        ),
        (
            "GPU health",
            [
                _panel("Temperature", [(gpu % "temperature_celsius", dev)], unit="celsius"),
                _panel("SM utilisation", [(gpu % "utilization_ratio", dev)], unit="percentunit"),
                _panel("Memory used", [(gpu % "memory_used_bytes", dev)], unit="bytes"),
                _panel(
                    "XID errors (1h)",
                    [
                        (
                            "sum by (host, gpu_uuid) (increase(llmwatch_fleet_gpu_xid_errors_total"
                            '{host=~"$host"}[1h]))',
                            "{{host}} {{gpu_uuid}}",
                        )
                    ],
                    kind="bargauge",
                ),
                _panel(
                    "Throttled GPUs",
                    [('sum by (host) (llmwatch_fleet_gpu_throttled{host=~"$host"})', "{{host}}")],
                ),
                _panel("Power draw", [(gpu % "power_watts", dev)], unit="watt"),
            ],
        ),
        (
            "Alerts",
            [
                _panel(
                    "Firing alerts by severity",
                    [("sum by (severity) (llmwatch_active_alerts)", "{{severity}}")],
                    kind="stat",
                ),
                _panel(
                    "Alert events",
                    [
                        (
                            "sum by (status, severity) (increase(llmwatch_alerts_total[1h]))",
                            "{{status}} {{severity}}",
                        )
                    ],
                ),
            ],
        ),
    ]
    variables = [
        _var("model", "Model", "label_values(llmwatch_fleet_requests_total, model)"),
        _var(
            "version",
            "Version",
            'label_values(llmwatch_fleet_requests_total{model=~"$model"}, model_version)',
        ),
        _var("gateway", "Gateway", "label_values(llmwatch_fleet_requests_total, gateway)"),
        _var("host", "GPU host", "label_values(llmwatch_fleet_gpu_temperature_celsius, host)"),
    ]
    return _dashboard("llmwatch-fleet", "llmwatch / Fleet", rows, variables)


def service() -> dict[str, Any]:
    rows = [
        (
            "Throughput",
            [
                _panel(
                    "Events in",
                    [("sum by (topic) (rate(llmwatch_events_in_total[5m]))", "{{topic}}")],
                    unit="ops",
                ),
                _panel(
                    "Accepted vs rejected",
                    [
                        ("sum (rate(llmwatch_events_accepted_total[5m]))", "accepted"),
                        ("sum (rate(llmwatch_rejects_total[5m]))", "rejected"),
                    ],
                    unit="ops",
                ),
                _panel(
                    "Rejects by reason",
                    [
                        (
                            "sum by (topic, reason_class) (rate(llmwatch_rejects_total[5m]))",
                            "{{topic}} {{reason_class}}",
                        )
                    ],
                    unit="ops",
                ),
                _panel(
                    "Decode path (per_message: a publisher sends unknown fields)",
                    [
                        (
                            "sum by (topic, path) (rate(llmwatch_decode_messages_total[5m]))",
                            "{{topic}} {{path}}",
                        )
                    ],
                    unit="ops",
                ),
            ],
        ),
        (
            "Lag and latency",
            [
                _panel("Consumer lag", [("sum by (topic) (llmwatch_consumer_lag)", "{{topic}}")]),
                _panel(
                    "Batch time p50 / p99",
                    [
                        (
                            "histogram_quantile(0.5, sum by (le, topic) "
                            "(rate(llmwatch_batch_seconds_bucket[5m])))",
                            "p50 {{topic}}",
                        ),
                        (
                            "histogram_quantile(0.99, sum by (le, topic) "
                            "(rate(llmwatch_batch_seconds_bucket[5m])))",
                            "p99 {{topic}}",
                        ),
                    ],
                    unit="s",
                ),
                _panel(
                    "Detector time p99",
                    [
                        (
                            "histogram_quantile(0.99, sum by (le, kind) "
                            "(rate(llmwatch_detector_seconds_bucket[5m])))",
                            "{{kind}}",
                        )
                    ],
                    unit="s",
                ),
                _panel(
                    "Mean batch size",
                    [
                        (
                            "sum by (topic) (rate(llmwatch_batch_size_sum[5m])) / "
                            "clamp_min(sum by (topic) (rate(llmwatch_batch_size_count[5m])), 1e-9)",
                            "{{topic}}",
                        )
                    ],
                ),
                _panel(
                    "Event-time watermark delay",
                    [("time() - max by (instance) (llmwatch_watermark_seconds)", "{{instance}}")],
                    unit="s",
                ),
            ],
        ),
        (
            "State",
            [
                _panel(
                    "Active series by detector",
                    [("sum by (detector) (llmwatch_active_series)", "{{detector}}")],
                ),
                _panel("Engines per worker", [("llmwatch_engines", "{{instance}}")]),
                _panel(
                    "Checkpoints",
                    [("sum (rate(llmwatch_checkpoints_total[5m]))", "per second")],
                    unit="ops",
                ),
                _panel("Workers up", [('sum (up{job="llmwatch-worker"})', "up")], kind="stat"),
            ],
        ),
        (
            "Alerts and notifications",
            [
                _panel(
                    "Alerts by state",
                    [
                        ("sum by (status) (rate(llmwatch_alerts_total[5m]))", "{{status}}"),
                        ("sum by (severity) (llmwatch_active_alerts)", "firing {{severity}}"),
                    ],
                ),
                _panel(
                    "Deliveries by outcome",
                    [
                        (
                            "sum by (receiver, outcome) "
                            "(rate(llmwatch_notify_deliveries_total[5m]))",
                            "{{receiver}} {{outcome}}",
                        )
                    ],
                    unit="ops",
                ),
                _panel(
                    "Retries and dead letters",
                    [
                        (
                            "sum by (receiver) (rate(llmwatch_notify_retries_total[5m]))",
                            "retries {{receiver}}",
                        ),
                        (
                            "sum by (receiver) (rate(llmwatch_notify_deliveries_total"
                            '{outcome="dead_lettered"}[5m]))',
                            "dead letters {{receiver}}",
                        ),
                    ],
                    unit="ops",
                ),
                _panel(
                    "Delivery time p95",
                    [
                        (
                            "histogram_quantile(0.95, sum by (le, receiver) "
                            "(rate(llmwatch_notify_delivery_seconds_bucket[5m])))",
                            "{{receiver}}",
                        )
                    ],
                    unit="s",
                ),
                _panel("Notifier lag", [("sum (llmwatch_notify_consumer_lag)", "alerts waiting")]),
                _panel(
                    "Oldest undelivered alert",
                    [
                        ("max (llmwatch_notify_oldest_undelivered_seconds)", "age"),
                        ("max (llmwatch_notify_paused)", "consumption paused"),
                    ],
                    unit="s",
                ),
                _panel(
                    "Silenced deliveries",
                    [
                        (
                            "sum by (receiver) (rate(llmwatch_notify_silenced_total[5m]))",
                            "{{receiver}}",
                        ),
                        ("max (llmwatch_notify_active_silences)", "active silences"),
                    ],
                ),
                _panel(
                    "Alerts consumed",
                    [("rate(llmwatch_notify_alerts_in_total[5m])", "{{instance}}")],
                    unit="ops",
                ),
            ],
        ),
    ]
    return _dashboard("llmwatch-service", "llmwatch / Service health", rows, [])


DASHBOARDS = {"llmwatch-fleet.json": fleet, "llmwatch-service.json": service}


def render() -> dict[str, str]:
    return {
        name: json.dumps(build(), indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
