"""Console/file receiver for the demo: one readable line per group notification, then
one indented line per alert in it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from schemas.models import Alert
from schemas.notification import Notification

from .base import DeliveryResult, Outcome, RateLimit
from .text import clean


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def format_line(alert: Alert, phase: str | None = None) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    when = (alert.ends_at or alert.starts_at).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = (
        f"{when} {(phase or str(alert.status)).upper():<12} {alert.severity!s:<8} "
        f"{alert.detector}: {alert.title} observed={_num(alert.observed)} "
        f"expected={_num(alert.expected)} score={alert.score:.2f} {{{labels}}} "
        f"fp={alert.fingerprint}"
    )
    # One alert, one line, whatever the title holds.
    return clean(line).replace("\r", " ").replace("\n", " ")


def format_note(note: Notification) -> str:
    head = (
        f"{note.phase.upper():<12} {note.severity!s:<8} group {note.group_key} ({note.reason}): "
        f"{len(note.firing)} firing, {len(note.resolved)} resolved"
    )
    lines = [clean(head).replace("\r", " ").replace("\n", " ")]
    lines += ["  " + format_line(a.alert) for a in note.alerts]
    return "\n".join(lines)


class ConsoleNotifier:
    def __init__(
        self, name: str = "console", path: str | Path | None = None, stream: TextIO | None = None
    ) -> None:
        self._name = name
        self._path = Path(path) if path is not None else None
        self._stream = stream

    @property
    def name(self) -> str:
        return self._name

    @property
    def rate_limit(self) -> RateLimit | None:
        return None

    async def send(self, note: Notification) -> DeliveryResult:
        line = format_note(note) + "\n"
        try:
            if self._path is not None:
                with self._path.open("a", encoding="utf-8") as fh:
                    fh.write(line)
            else:
                out = self._stream or sys.stdout
                out.write(line)
                out.flush()
        except OSError as exc:
            return DeliveryResult(
                self._name,
                note.group_key,
                note.phase,
                Outcome.RETRYABLE,
                detail=f"{type(exc).__name__}: {exc}",
            )
        return DeliveryResult(self._name, note.group_key, note.phase, Outcome.SENT)

    async def close(self) -> None:
        return None
