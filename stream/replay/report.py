"""The replay report: one self-contained HTML file with embedded PNG plots.

Per alerted series: observed values and the expected value with its band (from the
findings behind the alert), firing periods in red, labelled incident windows that
match the series shaded blue. Then a table of every alert with its explanation.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from detectors.base import Finding
from schemas.models import Alert, AlertStatus

from .plot_parts import (
    alert_view,
    drawn_band,
    firing_spans,
    format_time,
    legend_outside,
    png_b64,
    shade_incidents,
    when,
)
from .readers import SeriesTable
from .runner import ReplayResult
from .scoring import Incident, firing_alerts, match

MAX_PLOTS = 24
_GAP_S = 30.0
_META = ("alertname", "detector")


def _dt(ts: Any) -> Any:
    ms = np.round(np.asarray(ts, dtype=np.float64) * 1000.0).astype(np.int64)
    return ms.astype("datetime64[ms]")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _series_labels(a: Alert) -> dict[str, str]:
    return {k: v for k, v in a.labels.items() if k not in _META}


def _spans(alerts: Sequence[Alert], last_ts: float) -> dict[str, list[tuple[float, float]]]:
    """Firing periods per fingerprint, from firing/resolved events."""
    open_: dict[str, float] = {}
    out: dict[str, list[tuple[float, float]]] = {}
    for a in alerts:
        t0 = a.starts_at.timestamp()
        if a.status is AlertStatus.FIRING:
            open_.setdefault(a.fingerprint, t0)
        else:
            start = open_.pop(a.fingerprint, t0)
            end = a.ends_at.timestamp() if a.ends_at is not None else last_ts
            out.setdefault(a.fingerprint, []).append((start, end))
    for fp, start in open_.items():
        out.setdefault(fp, []).append((start, last_ts))
    return out


def _findings_for(a: Alert, findings: Sequence[Finding]) -> list[Finding]:
    name = a.labels.get("alertname")
    return [
        f
        for f in findings
        if f.detector == a.detector
        and (name is None or f.kind == name)
        and all(a.labels.get(k) == v for k, v in f.series.items())
    ]


def alert_figure(
    a: Alert,
    findings: list[Finding],
    spans: list[tuple[float, float]],
    incidents: Sequence[Incident],
) -> Figure:
    fig = Figure(figsize=(9, 2.6))
    ax: Any = fig.subplots()
    pts = sorted(findings, key=lambda f: f.ts)
    view = alert_view(pts, spans) if pts or spans else None
    t = [when(f.ts) for f in pts]
    obs = [np.nan if f.observed is None else f.observed for f in pts]
    exp = [np.nan if f.expected is None else f.expected for f in pts]
    lo = [np.nan if f.lower is None else f.lower for f in pts]
    hi = [np.nan if f.upper is None else f.upper for f in pts]
    # Findings exist only while a series looks wrong: do not draw lines across the gaps.
    gaps = [i for i in range(1, len(pts)) if pts[i].ts - pts[i - 1].ts > _GAP_S]
    for i in reversed(gaps):
        for arr in (obs, exp, lo, hi):
            arr.insert(i, np.nan)
        t.insert(i, when((pts[i].ts + pts[i - 1].ts) / 2))
    if pts:
        band_lo, band_hi = drawn_band(
            np.where(np.isnan(lo), exp, lo), np.where(np.isnan(hi), exp, hi), obs + exp
        )
        ax.fill_between(
            t, band_lo, band_hi, color="0.6", alpha=0.35, step="post", label="baseline band"
        )
        ax.plot(t, exp, color="0.3", lw=1, ls="--", label="expected")
        # On top of the shaded spans, and marked: a finding alone has no line to draw.
        ax.plot(t, obs, color="black", lw=1.6, marker="o", ms=3.5, zorder=5, label="observed")
    elif a.observed is not None:
        ax.scatter([a.starts_at], [a.observed], color="black", zorder=5, label="observed")
    firing_spans(ax, spans)
    shade_incidents(ax, incidents, _series_labels(a), view)
    if view is not None:
        ax.set_xlim(when(view[0]), when(view[1]))
    ax.set_title(a.title, fontsize=9)
    format_time(ax)
    legend_outside(ax)
    return fig


def _table_plot(
    table: SeriesTable,
    name: str,
    alerts: Sequence[Alert],
    spans: dict[str, list[tuple[float, float]]],
    incidents: Sequence[Incident],
) -> str:
    rows = np.flatnonzero(table.ok & (np.asarray(table.series, dtype=object) == name))
    order = rows[np.argsort(table.ts[rows], kind="stable")]
    t = _dt(table.ts[order])
    fig = Figure(figsize=(9, 3.4))
    axes: Any = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax, bx = axes
    ax.plot(t, table.value[order], color="black", lw=0.8, label=name)
    mine = [a for a in firing_alerts(alerts) if a.labels.get("series", name) == name]
    for a in mine:
        firing_spans(ax, spans.get(a.fingerprint, []))
    shade_incidents(ax, incidents, {"series": name})
    bx.plot(t, np.nan_to_num(table.scores[order]), color="tab:red", lw=0.8)
    bx.set_ylim(0, 1)
    bx.set_ylabel("score", fontsize=7)
    ax.set_ylabel("value", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.set_title(f"{name} ({table.path.name})", fontsize=9)
    format_time(bx)
    legend_outside(ax)
    return png_b64(fig)


def _overview(result: ReplayResult, alerts: Sequence[Alert], incidents: Sequence[Incident]) -> str:
    fig = Figure(figsize=(9, 2.6))
    ax: Any = fig.subplots()
    tl = result.timeline
    kinds = np.asarray(tl.kind, dtype=object)
    for kind in sorted(set(tl.kind)):
        m = kinds == kind
        ax.plot(_dt(np.asarray(tl.ts)[m]), np.asarray(tl.p99_score)[m], lw=0.8, label=kind)
    for inc in incidents:
        ax.axvspan(
            when(inc.start),
            when(inc.end),
            color="tab:blue",
            alpha=0.12,
            label="labelled incident",
        )
    for a in firing_alerts(alerts):
        ax.axvline(a.starts_at, color="tab:red", lw=0.6, alpha=0.6, label="alert fires")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("p99 row score", fontsize=7)
    ax.set_title("Fleet overview", fontsize=9)
    format_time(ax)
    legend_outside(ax)
    return png_b64(fig)


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.4g}"


def _alert_rows(alerts: Sequence[Alert], incidents: Sequence[Incident], grace_s: float) -> str:
    matched = {m.alert.alert_id: m.incidents for m in match(alerts, incidents, grace_s)}
    out = []
    for a in alerts:
        labels = ", ".join(f"{k}={v}" for k, v in _series_labels(a).items())
        bounds = f"[{_fmt(a.bounds.lower)}, {_fmt(a.bounds.upper)}]"
        hit = ", ".join(matched.get(a.alert_id, [])) if a.status is AlertStatus.FIRING else ""
        cells = [
            a.starts_at.strftime("%Y-%m-%d %H:%M:%S"),
            a.status.value,
            a.severity.value,
            a.detector,
            a.title,
            labels,
            _fmt(a.observed),
            _fmt(a.expected),
            bounds,
            f"{a.score:.2f}",
            a.explanation,
            hit,
        ]
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;
vertical-align:top}th{background:#f3f3f3}img{max-width:100%;display:block;margin:.5em 0}
.metric{display:inline-block;margin:0 1.5em .5em 0}.metric b{font-size:1.4em;display:block}"""


def _metrics(summary: dict[str, Any] | None) -> str:
    if not summary:
        return "<p>No labels given: alerts are not scored.</p>"

    def cell(name: str, v: Any, pct: bool = True) -> str:
        text = "n/a" if v is None else (f"{100 * v:.1f}%" if pct else f"{v:.3g}")
        return f'<span class="metric"><b>{text}</b>{html.escape(name)}</span>'

    d = summary["delay_s"]
    parts = [
        cell("precision", summary["precision"]),
        cell("recall", summary["recall"]),
        cell("F1", summary["f1"]),
        cell("median delay (s)", d["p50"], False),
        cell("p90 delay (s)", d["p90"], False),
        cell("false alerts / series-day", summary["false_alerts_per_series_day"], False),
    ]
    notes = summary.get("notifications")
    if notes:
        parts += [
            cell("notifications (pages)", notes["pages"], False),
            cell("notifications / incident", notes["pages_per_incident"], False),
            cell("alerts held by inhibition", notes["held_by_inhibition"], False),
            cell("alerts that fired and resolved unseen", notes.get("held_as_transient", 0), False),
        ]
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v['detected']}/{v['incidents']}</td>"
        f"<td>{_fmt(v['delay_s']['p50'])}</td><td>{v['matched_alerts']}</td></tr>"
        for k, v in summary["per_kind"].items()
    )
    return (
        "<div>" + "".join(parts) + "</div><table><tr><th>incident kind</th><th>detected</th>"
        f"<th>median delay (s)</th><th>matched alerts</th></tr>{rows}</table>"
    )


def write_report(
    path: Path,
    result: ReplayResult,
    incidents: Sequence[Incident] = (),
    summary: dict[str, Any] | None = None,
    grace_s: float = 300.0,
) -> Path:
    alerts = result.alerts
    last = result.last_ts if result.last_ts is not None else 0.0
    spans = _spans(alerts, last)
    body = [
        f"<h1>llmwatch replay</h1><p>{result.n_rows} rows in {result.elapsed_s:.1f} s, "
        f"{result.n_series} series, {len(firing_alerts(alerts))} alerts fired, "
        f"{len(result.bad_rows)} bad rows.</p>",
        _metrics(summary),
    ]
    if result.uncovered_kinds:
        body.append(
            f"<p><b>No detector consumes {', '.join(result.uncovered_kinds)} rows</b>: "
            "their scores are 0 and they cannot raise alerts.</p>"
        )
    # One timeline point (a CSV read in one part) is a dot on an axis spanning years:
    # the per-series plots below say everything then.
    if len(result.timeline.ts) > 1:
        body.append(_img(_overview(result, alerts, incidents), "fleet overview"))
    plots = 0
    for table in result.tables:
        for name in dict.fromkeys(table.series):
            if plots < MAX_PLOTS:
                body.append(_img(_table_plot(table, name, alerts, spans, incidents), name))
                plots += 1
    body.append("<h2>Alerted series</h2>")
    for a in firing_alerts(alerts):
        if plots >= MAX_PLOTS:
            body.append(f"<p>(plots stop at {MAX_PLOTS}; every alert is in the table)</p>")
            break
        if a.labels.get("series") is not None and result.tables:
            continue  # drawn with its CSV series above
        fs = _findings_for(a, result.findings)
        body.append(
            _img(png_b64(alert_figure(a, fs, spans.get(a.fingerprint, []), incidents)), a.title)
        )
        plots += 1
    body.append(
        "<h2>Alerts</h2><table><tr><th>starts</th><th>status</th><th>severity</th>"
        "<th>detector</th><th>title</th><th>labels</th><th>observed</th>"
        "<th>expected</th><th>bounds</th><th>score</th><th>explanation</th>"
        f"<th>incidents</th></tr>{_alert_rows(alerts, incidents, grace_s)}</table>"
    )
    if result.bad_rows:
        rows = "".join(
            f"<tr><td>{html.escape(b.source)}</td><td>{b.line}</td>"
            f"<td>{html.escape(b.reason)}</td></tr>"
            for b in result.bad_rows[:200]
        )
        body.append(
            f"<h2>Bad rows ({len(result.bad_rows)})</h2><table><tr><th>file</th>"
            f"<th>line</th><th>reason</th></tr>{rows}</table>"
        )
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>llmwatch replay</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path
