"""Retry with exponential backoff and full jitter, bounded by a deadline; token buckets."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

from schemas.notification import Notification

from .base import Clock, DeliveryResult, Notifier, Outcome, RateLimit

log = logging.getLogger("llmwatch.notify")


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff shape. The deadline outlasts a typical provider outage (minutes)."""

    base_s: float = 1.0
    cap_s: float = 60.0
    deadline_s: float = 3600.0
    # A Retry-After longer than this is capped: a broken header must not park a receiver.
    max_retry_after_s: float = 600.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def backoff(self, retry_number: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**n)] (AWS architecture blog)."""
        ceiling = min(self.cap_s, self.base_s * (2.0 ** min(retry_number, 30)))
        return self.rng.uniform(0.0, ceiling)


class TokenBucket:
    """Sustained ``rate_per_s`` with bursts of ``burst``; waits on the injected clock."""

    def __init__(self, limit: RateLimit, clock: Clock) -> None:
        if limit.rate_per_s <= 0 or limit.burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self._limit = limit
        self._clock = clock
        self._tokens = float(limit.burst)
        self._updated = clock.now()

    def _refill(self) -> None:
        now = self._clock.now()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(
            float(self._limit.burst), self._tokens + elapsed * self._limit.rate_per_s
        )
        self._updated = now

    async def acquire(self) -> float:
        """Take one token, sleeping until there is one; returns the seconds waited."""
        waited = 0.0
        self._refill()
        while self._tokens < 1.0:
            wait = (1.0 - self._tokens) / self._limit.rate_per_s
            await self._clock.sleep(wait)
            waited += wait
            self._refill()
        self._tokens -= 1.0
        return waited


class Retrier:
    """Drives one notifier's attempts for one notification until sent, refused, or out of time."""

    def __init__(
        self,
        notifier: Notifier,
        clock: Clock,
        policy: RetryPolicy,
        bucket: TokenBucket | None = None,
    ) -> None:
        self._notifier = notifier
        self._clock = clock
        self._policy = policy
        self._bucket = bucket

    async def deliver(self, note: Notification) -> DeliveryResult:
        started = self._clock.now()
        attempts = 0
        while True:
            if self._bucket is not None:
                await self._bucket.acquire()
            attempts += 1
            result = (await self._notifier.send(note)).but(attempts=attempts)
            if result.outcome is not Outcome.RETRYABLE:
                return result
            wait = self._policy.backoff(attempts - 1)
            if result.retry_after_s is not None:
                wait = min(result.retry_after_s, self._policy.max_retry_after_s)
            remaining = started + self._policy.deadline_s - self._clock.now()
            if wait > remaining:
                return result.but(
                    outcome=Outcome.PERMANENT,
                    detail=f"gave up after {attempts} attempts "
                    f"({self._policy.deadline_s:g} s deadline); last: {result.detail}",
                )
            log.info(
                "%s: attempt %d for %s failed (%s); retrying in %.1f s",
                result.receiver,
                attempts,
                note.group_key,
                result.detail,
                wait,
            )
            await self._clock.sleep(wait)
