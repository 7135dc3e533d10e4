"""Human output for the replay and demo commands: one line per alert, a progress bar."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TextIO

from schemas.models import Alert, AlertStatus

_META = ("alertname", "detector")


def _num(v: float | None) -> str:
    if v is None:
        return "?"
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.4g}"


def alert_time(a: Alert) -> datetime:
    """The event time a line shows: when it ended for a resolved alert, else when it began."""
    return a.ends_at if a.status is AlertStatus.RESOLVED and a.ends_at else a.starts_at


def alert_line(a: Alert) -> str:
    """One line: time, status, severity, title, labels, observed vs expected."""
    parts = [
        alert_time(a).strftime("%Y-%m-%d %H:%M:%S"),
        f"{a.status.value.upper():8}",
        f"{a.severity.value:8}",
        a.title,
    ]
    # Titles usually name their labels already; repeat only what they leave out.
    missing = [
        f"{k}={v}"
        for k, v in sorted(a.labels.items())
        if k not in _META and f"{k}={v}" not in a.title
    ]
    if missing:
        parts.append(f"[{' '.join(missing)}]")
    if a.observed is not None or a.expected is not None:
        parts.append(f"observed {_num(a.observed)} vs expected {_num(a.expected)}")
    # One alert, one line, whatever a title or label holds.
    return "  ".join(parts).replace("\r", " ").replace("\n", " ")


@contextmanager
def progress_bar(total_bytes: int, stream: TextIO | None = None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr when it is a terminal; otherwise a no-op callback."""
    err = stream if stream is not None else sys.stderr
    if not err.isatty():
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(file=err),
        transient=True,
    ) as bar:
        task = bar.add_task("replay", total=max(1, total_bytes))

        def advance(n: int) -> None:
            bar.advance(task, n)

        yield advance


def printer(stream: TextIO | None = None) -> Callable[[Alert], None]:
    out = stream if stream is not None else sys.stdout

    def emit(a: Alert) -> None:
        print(alert_line(a), file=out, flush=True)

    return emit


class OrderedPrinter:
    """Alert lines in event-time order, printed by ``flush`` once the replay is done.

    A replay finds alerts slice by slice and kind by kind, and an alert's time is when
    it began (``for_s`` before it fired), so they arrive out of event-time order: held
    here and sorted (stable: equal times keep their arrival order).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.out = stream if stream is not None else sys.stdout
        self._held: list[Alert] = []

    def __call__(self, a: Alert) -> None:
        self._held.append(a)

    def flush(self) -> int:
        held, self._held = sorted(self._held, key=alert_time), []
        for a in held:
            print(alert_line(a), file=self.out)
        self.out.flush()
        return len(held)


def describe(summary: dict[str, Any]) -> str:
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f}%"

    d = summary["delay_s"]
    p50 = "n/a" if d["p50"] is None else f"{d['p50']:.0f} s"
    return (
        f"incidents {summary['detected']}/{summary['incidents']} detected "
        f"(recall {pct(summary['recall'])}), precision {pct(summary['precision'])}, "
        f"F1 {pct(summary['f1'])}, median delay {p50}, "
        f"{summary['false_alerts']} false alerts" + _notified(summary.get("notifications"))
    )


def _notified(n: dict[str, Any] | None) -> str:
    return f"; {notified(n)}" if n else ""


def notified(n: dict[str, Any]) -> str:
    """The notifier's view: pages (per incident, with labels) and what inhibition,
    silences and grouping held."""
    per = n["pages_per_incident"]
    per_text = (
        ""
        if n.get("incidents") is None
        else (" (n/a per incident)" if per is None else f" ({per:.1f} per incident)")
    )
    return (
        f"notifications {n['pages']}{per_text}, "
        f"{n['held_by_inhibition']} alerts held by inhibition, "
        f"{n['held_by_silences']} by silences, {n.get('held_as_transient', 0)} transient, "
        f"{n.get('folded_by_grouping', 0)} folded by grouping"
    )
