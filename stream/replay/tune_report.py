"""``llmwatch tune``'s pictures: tradeoff.png and a self-contained tune.html.

The page embeds the plot as a data URI, as the replay report does, so it reads the same
when mailed or moved without its folder.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .plot_parts import png_b64


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def _unit_lim(values: Sequence[float]) -> tuple[float, float]:
    """Limits for a fraction: around the trials' values (so close trials stay apart),
    never past [0, 1] by more than a margin (so a point on 1.0 is not cut in half)."""
    seen = [v for v in values if v == v]
    if not seen:
        return -0.03, 1.03
    lo, hi = min(seen), max(seen)
    pad = max(0.05, 0.1 * (hi - lo))
    return max(lo - pad, -0.03), min(hi + pad, 1.03)


def tradeoff_figure(rows: Sequence[dict[str, Any]]) -> Figure:
    """Precision against recall coloured by objective, and objective against median delay;
    the base config (trial 0) and the best trial are marked on both."""
    # Constrained layout keeps the colorbar and its label clear of the right plot.
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax, bx = fig.subplots(1, 2)
    p = [r["precision"] if r["precision"] is not None else float("nan") for r in rows]
    rc = [r["recall"] if r["recall"] is not None else float("nan") for r in rows]
    d = [r["delay_p50_s"] if r["delay_p50_s"] is not None else float("nan") for r in rows]
    o = [r["objective"] for r in rows]
    best = max(range(len(rows)), key=lambda i: o[i]) if rows else None
    sc = ax.scatter(rc, p, c=o, cmap="viridis", s=28, zorder=3)
    bx.scatter(d, o, color="tab:blue", s=28, zorder=3, label="trial")
    if rows:
        ring = dict(marker="s", s=110, facecolors="none", edgecolors="black", zorder=4)
        ax.scatter([rc[0]], [p[0]], label="base config (trial 0)", **ring)
        bx.scatter([d[0]], [o[0]], label="base config (trial 0)", **ring)
    if best is not None:
        star = dict(marker="*", s=160, color="tab:red", zorder=5, label=f"best (trial {best})")
        ax.scatter([rc[best]], [p[best]], **star)
        bx.scatter([d[best]], [o[best]], **star)
    ax.set(xlabel="recall", ylabel="precision", xlim=_unit_lim(rc), ylim=_unit_lim(p))
    ax.set_title("precision / recall per trial", fontsize=9)
    fig.colorbar(sc, ax=ax, label="objective", pad=0.02)
    bx.set(xlabel="median delay (s)", ylabel="objective")
    undetected = sum(1 for v in d if v != v)
    note = f" ({undetected} trials detected nothing: no delay)" if undetected else ""
    bx.set_title("objective / median delay" + note, fontsize=9)
    if rows:
        bx.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=7)
    for axis in (ax, bx):
        axis.grid(alpha=0.3)
    return fig


def write_tune_report(
    plot: Path, report: Path, rows: Sequence[dict[str, Any]], formula: str
) -> None:
    fig = tradeoff_figure(rows)
    b64 = png_b64(fig)
    plot.write_bytes(base64.b64decode(b64))
    body = "".join(
        f"<tr><td>{r['trial']}</td><td>{r['objective']:.3f}</td><td>{_f(r['precision'])}</td>"
        f"<td>{_f(r['recall'])}</td><td>{_f(r['delay_p50_s'])}</td>"
        f"<td><code>{html.escape(json.dumps(r['params']))}</code></td></tr>"
        for r in sorted(rows, key=lambda r: -r["objective"])
    )
    report.write_text(
        "<!doctype html><meta charset='utf-8'><title>llmwatch tune</title>"
        f"<h1>llmwatch tune</h1><p>objective: {html.escape(formula)}</p>"
        f'<img alt="precision, recall and delay trade-off" '
        f'src="data:image/png;base64,{b64}" style="max-width:100%">'
        "<table border=1><tr><th>trial</th><th>objective</th><th>precision</th><th>recall</th>"
        f"<th>median delay (s)</th><th>params</th></tr>{body}</table>",
        encoding="utf-8",
    )
