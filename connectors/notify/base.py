"""The one notifier protocol, its result type, and the shared HTTP classification.

Every receiver makes one attempt per ``send`` and says what happened in a
``DeliveryResult``; deciding whether and when to try again is ``retry.py``'s job,
so every integration retries the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from schemas.notification import Notification

from .redact import Redactor

# Response bodies are kept only as a hint for the dead letter, never whole.
MAX_DETAIL_CHARS = 512


class Clock(Protocol):
    """Wall-clock seconds and a sleep; tests pass a fake so no test waits."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class Outcome(StrEnum):
    SENT = "sent"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    DEDUPLICATED = "deduplicated"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class DeliveryResult:
    """What one delivery (or one attempt of it) came to. ``detail`` is redacted."""

    receiver: str
    group_key: str
    phase: str
    outcome: Outcome
    http_status: int | None = None
    detail: str = ""
    retry_after_s: float | None = None
    attempts: int = 1

    def but(self, **changes: object) -> DeliveryResult:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RateLimit:
    """A token bucket's shape: ``rate_per_s`` sustained, ``burst`` at once."""

    rate_per_s: float
    burst: int = 1


# PagerDuty documents about 120 events per minute per routing key.
PAGERDUTY_RATE = RateLimit(rate_per_s=2.0, burst=20)
# Slack documents about one message per second per channel (short bursts tolerated).
SLACK_RATE = RateLimit(rate_per_s=1.0, burst=3)


@runtime_checkable
class Notifier(Protocol):
    """One receiver. ``send`` makes exactly one attempt at one group's notification and
    never raises for I/O."""

    @property
    def name(self) -> str: ...

    @property
    def rate_limit(self) -> RateLimit | None: ...

    async def send(self, note: Notification) -> DeliveryResult: ...

    async def close(self) -> None: ...


def phase_of(note: Notification) -> str:
    """firing, acknowledged or resolved: what one delivery tells a receiver."""
    return note.phase


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def classify_status(status: int) -> Outcome:
    """2xx done; 429 and 5xx worth retrying; any other answer will not change."""
    if 200 <= status < 300:
        return Outcome.SENT
    if status == 429 or status >= 500:
        return Outcome.RETRYABLE
    return Outcome.PERMANENT


class ResultFactory:
    """Builds one receiver's results, redacting everything that goes into them."""

    def __init__(self, receiver: str, redactor: Redactor) -> None:
        self.receiver = receiver
        self.redact = redactor

    def _base(self, note: Notification) -> DeliveryResult:
        return DeliveryResult(
            receiver=self.receiver,
            group_key=note.group_key,
            phase=note.phase,
            outcome=Outcome.SENT,
        )

    def from_http(
        self,
        note: Notification,
        status: int,
        headers: Mapping[str, str],
        body: str,
        now: float,
    ) -> DeliveryResult:
        outcome = classify_status(status)
        detail = "" if outcome is Outcome.SENT else self.redact(body[:MAX_DETAIL_CHARS])
        retry_after = None
        if outcome is Outcome.RETRYABLE:
            retry_after = parse_retry_after(headers.get("Retry-After"), now)
        return self._base(note).but(
            outcome=outcome,
            http_status=status,
            detail=f"HTTP {status}" + (f": {detail}" if detail else ""),
            retry_after_s=retry_after,
        )

    def from_exception(self, note: Notification, exc: BaseException) -> DeliveryResult:
        """Timeouts and network errors: the request may not have arrived, so retry."""
        return self._base(note).but(outcome=Outcome.RETRYABLE, detail=self.redact.exception(exc))

    def sent(self, note: Notification, status: int | None = None) -> DeliveryResult:
        return self._base(note).but(http_status=status)

    def permanent(
        self, note: Notification, detail: str, status: int | None = None
    ) -> DeliveryResult:
        return self._base(note).but(
            outcome=Outcome.PERMANENT, detail=self.redact(detail), http_status=status
        )

    def retryable(
        self,
        note: Notification,
        detail: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> DeliveryResult:
        return self._base(note).but(
            outcome=Outcome.RETRYABLE,
            detail=self.redact(detail),
            http_status=status,
            retry_after_s=retry_after,
        )
