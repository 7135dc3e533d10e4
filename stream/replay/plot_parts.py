"""Plot pieces shared by the replay and tune reports: embedding, time axes, legends
placed outside the data, incident and firing spans, and baseline bands as drawn."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import matplotlib.dates as mdates
import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from detectors.base import Finding

from .scoring import Incident, labels_match

# One colour per incident kind, none of them the firing red or the data's black/grey.
_INCIDENT_COLOURS = ("tab:blue", "tab:green", "tab:purple", "tab:olive", "tab:cyan", "tab:brown")
_MIN_VIEW_S = 300.0  # an alert plot shows at least this much time around its findings


def when(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def png_b64(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def shade_incidents(
    ax: Any,
    incidents: Sequence[Incident],
    labels: dict[str, str],
    view: tuple[float, float] | None = None,
) -> None:
    """Matching incidents, one colour per kind so the legend says which span is which;
    incidents outside ``view`` are left out (they would only widen the time axis)."""
    shown = [
        inc
        for inc in incidents
        if labels_match(labels, inc.target)
        and (view is None or (inc.end >= view[0] and inc.start <= view[1]))
    ]
    kinds = list(dict.fromkeys(inc.kind for inc in shown))
    for inc in shown:
        ax.axvspan(
            when(inc.start),
            when(inc.end),
            color=_INCIDENT_COLOURS[kinds.index(inc.kind) % len(_INCIDENT_COLOURS)],
            alpha=0.15,
            label=f"incident {inc.kind}",
        )


def firing_spans(ax: Any, spans: list[tuple[float, float]]) -> None:
    for a, b in spans:
        ax.axvspan(when(a), when(max(b, a + 1.0)), color="tab:red", alpha=0.18, label="firing")


def legend_outside(ax: Any) -> None:
    handles, names = ax.get_legend_handles_labels()
    seen: dict[str, Any] = {}
    for h, n in zip(handles, names, strict=True):
        seen.setdefault(n, h)
    if seen:
        # Outside the axes, right of them: a legend inside always covers some data.
        ax.legend(
            seen.values(),
            seen.keys(),
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0.0,
            fontsize=7,
        )


def format_time(ax: Any) -> None:
    # Concise labels adapt to the span (seconds on a 2-minute plot, no repeated "08:06").
    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC)", fontsize=7)
    ax.tick_params(labelsize=7)


def drawn_band(
    lower: npt.ArrayLike, upper: npt.ArrayLike, values: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The baseline band as drawn: a quantity never negative in the data (a rate, a
    latency, a count) gets a band that stops at 0, and one that stays within [0, 1]
    (a rate or fraction) a band that stops at 1. ``values``: the observed and expected
    values. NaN stays NaN (no band there)."""
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64)
    seen = vals[np.isfinite(vals)]
    if seen.size and seen.min() >= 0.0:
        lo, hi = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
        if seen.max() <= 1.0:
            lo, hi = np.minimum(lo, 1.0), np.minimum(hi, 1.0)
    return lo, hi


def alert_view(pts: Sequence[Finding], spans: list[tuple[float, float]]) -> tuple[float, float]:
    """Time window of an alert plot: its findings and firing periods, padded, at least
    ``_MIN_VIEW_S`` wide (the whole replay would squeeze a 1-minute alert to a sliver)."""
    times = [f.ts for f in pts] + [t for s in spans for t in s]
    a, b = min(times), max(times)
    pad = max((_MIN_VIEW_S - (b - a)) / 2.0, 0.1 * (b - a), 15.0)
    return a - pad, b + pad
