"""Report plots a reader can use: legends beside the data, bands that respect a rate's
range, an alert's time axis around the alert, and tune.html self-contained."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import date2num
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from detectors.base import Finding
from schemas.models import Alert, AlertStatus, Bounds, Severity
from stream.replay.plot_parts import alert_view, drawn_band
from stream.replay.report import alert_figure
from stream.replay.scoring import Incident
from stream.replay.tune_report import tradeoff_figure, write_tune_report

T0 = datetime(2024, 6, 3, 8, 0, tzinfo=UTC).timestamp()
SERIES = {"model": "m1", "model_version": "v1"}


def _rate_findings() -> list[Finding]:
    # A truncation-rate drift: the rate jumps from ~0.04 to ~0.42, band reaching below 0.
    obs = [0.40, 0.44, 0.45, 0.43, 0.44, 0.37, 0.03]
    return [
        Finding(
            detector="drift",
            kind="drift.truncation_rate",
            series=SERIES,
            ts=T0 + 280 + 10 * i,
            score=0.8,
            anomalous=True,
            observed=o,
            expected=0.045,
            lower=-0.16,
            upper=0.25,
        )
        for i, o in enumerate(obs)
    ]


def _alert() -> Alert:
    return Alert(
        alert_id="a1",
        fingerprint="fp1",
        status=AlertStatus.FIRING,
        severity=Severity.WARNING,
        detector="drift",
        title="drift.truncation_rate: model=m1, model_version=v1",
        summary="",
        labels={"alertname": "drift.truncation_rate", "detector": "drift", **SERIES},
        observed=0.42,
        expected=0.045,
        bounds=Bounds(lower=-0.16, upper=0.25),
        score=0.8,
        starts_at=datetime.fromtimestamp(T0 + 280, tz=UTC),
    )


def _drawn(fig: Figure) -> RendererBase:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # type: ignore[no-untyped-call]  # matplotlib leaves the Agg canvas unannotated
    renderer: RendererBase = canvas.get_renderer()  # type: ignore[no-untyped-call]
    return renderer


def _tight_box(ax: Axes, renderer: RendererBase) -> Bbox:
    box = ax.get_tightbbox(renderer)
    assert box is not None  # None only for an invisible axes
    return box


def test_rate_band_stops_at_zero_and_one() -> None:
    lo, hi = drawn_band([-0.16, 0.1, np.nan], [0.25, 1.4, np.nan], [0.42, 0.045, 0.03])
    assert lo.tolist()[:2] == [0.0, 0.1] and hi.tolist()[:2] == [0.25, 1.0]
    assert np.isnan(lo[2]) and np.isnan(hi[2])  # no band stays no band
    # A quantity that is non-negative but not a fraction (a latency) is clipped at 0 only.
    lo, hi = drawn_band([-50.0], [900.0], [400.0, 120.0])
    assert lo.tolist() == [0.0] and hi.tolist() == [900.0]
    # A quantity that goes negative keeps its band as the detector gave it.
    lo, hi = drawn_band([-3.0], [2.0], [-1.0, 0.5])
    assert lo.tolist() == [-3.0] and hi.tolist() == [2.0]


def test_alert_plot_legend_beside_data_band_clipped_axis_around_alert() -> None:
    findings = _rate_findings()
    far = Incident("i9", "prompt_drift", SERIES, T0 + 3000, T0 + 3100)
    near = Incident("i1", "truncation_drift", SERIES, T0 + 260, T0 + 330)
    fig = alert_figure(_alert(), findings, [(T0 + 290, T0 + 350)], [near, far])
    renderer = _drawn(fig)
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend is not None
    # The legend is drawn outside the axes, so it cannot hide any plotted data.
    box = legend.get_window_extent(renderer)
    assert not box.overlaps(ax.get_window_extent(renderer))
    names = [t.get_text() for t in legend.get_texts()]
    assert "incident truncation_drift" in names and "incident prompt_drift" not in names
    # The band is drawn from 0, not from the detector's -0.16.
    band = ax.collections[0]
    ys = np.concatenate([np.asarray(p.vertices)[:, 1] for p in band.get_paths()])
    assert ys.min() >= 0.0 and ys.max() <= 1.0
    # The time axis is the alert's neighbourhood, not the whole replay: every finding on it.
    x0, x1 = ax.get_xlim()
    at = [
        date2num(datetime.fromtimestamp(f.ts, tz=UTC))  # type: ignore[no-untyped-call]
        for f in findings
    ]
    assert x0 < min(at) and max(at) < x1
    assert (x1 - x0) * 86400.0 < 600.0
    # The observed line is drawn above the shaded spans.
    observed = next(line for line in ax.get_lines() if line.get_label() == "observed")
    assert all(observed.get_zorder() > c.get_zorder() for c in [*ax.collections, *ax.patches])


def test_alert_view_is_padded_and_holds_findings_and_firing() -> None:
    findings = _rate_findings()
    a, b = alert_view(findings, [(T0 + 290, T0 + 900)])
    assert a < T0 + 280 and b > T0 + 900 and b - a >= 300.0


ROWS = [
    {
        "trial": i,
        "params": {} if i == 0 else {"lifecycle.defaults.for_s": 10.0 * i},
        "objective": obj,
        "precision": p,
        "recall": r,
        "delay_p50_s": d,
    }
    for i, (obj, p, r, d) in enumerate(
        [
            (0.84, 0.9, 1.0, 17.7),
            (0.82, 0.86, 1.0, 21.7),
            (0.88, 1.0, 0.9, 35.7),
            (-0.6, None, 0.0, None),
        ]
    )
]


def test_tradeoff_plot_colorbar_clear_of_the_other_plot() -> None:
    fig = tradeoff_figure(ROWS)
    renderer = _drawn(fig)
    boxes = [_tight_box(a, renderer) for a in fig.axes]  # with tick and axis labels
    assert len(boxes) == 3  # precision/recall, objective/delay, colorbar
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (i, j)


def test_tune_html_embeds_its_plot(tmp_path: Path) -> None:
    plot, report = tmp_path / "tradeoff.png", tmp_path / "tune.html"
    write_tune_report(plot, report, ROWS, "F1 - penalties")
    page = report.read_text()
    assert "data:image/png;base64," in page
    assert not re.search(r"src=[\"'][^\"']*\.png", page)
    assert plot.read_bytes()[:4] == b"\x89PNG"
    rows = re.findall(r"<tr><td>(\d+)</td><td>(-?[\d.]+)</td>", page)
    assert [int(t) for t, _ in rows] == [2, 0, 1, 3]
