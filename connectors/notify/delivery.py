"""The dispatcher: one alert to its routed receivers, each on its own lane.

Each receiver has one queue and one worker, so an outage at one receiver only
delays that receiver's queue, and a receiver sees a fingerprint's trigger before
its resolve (the order they were submitted). Delivery is at least once; the
ledger, keyed by (receiver, fingerprint, episode, phase), makes a replay after a
restart a no-op instead of a second page.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from schemas.models import Alert

from .base import Clock, DeliveryResult, Notifier, Outcome, SystemClock, phase_of
from .retry import Retrier, RetryPolicy, TokenBucket
from .routing import Router
from .stores import Ledger, MemoryLedger

log = logging.getLogger("llmwatch.notify")


@dataclass
class DeliveryCounts:
    sent: int = 0
    retried: int = 0
    deduplicated: int = 0
    dead_lettered: int = 0

    def add(self, result: DeliveryResult) -> None:
        self.retried += max(0, result.attempts - 1)
        if result.outcome is Outcome.SENT:
            self.sent += 1
        elif result.outcome is Outcome.DEDUPLICATED:
            self.deduplicated += 1
        else:
            self.dead_lettered += 1

    def merge(self, other: DeliveryCounts) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.deduplicated += other.deduplicated
        self.dead_lettered += other.dead_lettered


@dataclass(frozen=True)
class DeadLetterRecord:
    """A delivery given up on, with the (already redacted) reason."""

    receiver: str
    alert_id: str
    fingerprint: str
    phase: str
    reason: str
    http_status: int | None
    attempts: int


DeadLetterSink = Callable[[DeadLetterRecord], Awaitable[None] | None]


def ledger_key(receiver: str, alert: Alert) -> str:
    # starts_at tells episodes apart: the same fingerprint may fire again next week.
    return _key(receiver, alert, phase_of(alert))


def _key(receiver: str, alert: Alert, phase: str) -> str:
    return f"{receiver}|{alert.fingerprint}|{alert.starts_at.timestamp():.3f}|{phase}"


_Job = tuple[Alert, "asyncio.Future[DeliveryResult]"]


class _Lane:
    """One receiver's queue and worker."""

    def __init__(self, dispatcher: Dispatcher, notifier: Notifier) -> None:
        self.notifier = notifier
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        bucket = (
            TokenBucket(notifier.rate_limit, dispatcher.clock)
            if notifier.rate_limit is not None
            else None
        )
        self.retrier = Retrier(notifier, dispatcher.clock, dispatcher.policy, bucket)
        self._dispatcher = dispatcher
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name=f"notify-{self.notifier.name}")

    async def _run(self) -> None:
        while True:
            alert, future = await self.queue.get()
            try:
                result = await self._deliver(alert)
                if not future.done():
                    future.set_result(result)
            except BaseException as exc:
                if not future.done():
                    future.set_exception(exc)
                raise
            finally:
                self.queue.task_done()

    async def _deliver(self, alert: Alert) -> DeliveryResult:
        name = self.notifier.name
        ledger = self._dispatcher.ledger
        phase = phase_of(alert)
        stale = phase != "resolved" and ledger.seen(_key(name, alert, "resolved"))
        if ledger.seen(_key(name, alert, phase)) or stale:
            return DeliveryResult(name, alert.fingerprint, phase, Outcome.DEDUPLICATED, attempts=0)
        try:
            result = await self.retrier.deliver(alert)
        except Exception as exc:
            # A notifier must not raise; if one does, its message may hold anything.
            result = DeliveryResult(
                name,
                alert.fingerprint,
                phase,
                Outcome.PERMANENT,
                detail=f"notifier raised {type(exc).__name__}",
            )
        if result.outcome is Outcome.SENT:
            ledger.record(_key(name, alert, phase), "sent")
            log.info("%s: delivered %s %s", name, phase, alert.fingerprint)
            return result
        result = result.but(outcome=Outcome.DEAD_LETTERED)
        # Recorded too: a restart must not retry (and re-page) what was given up on.
        ledger.record(_key(name, alert, phase), "dead_lettered")
        await self._dispatcher.dead_letter(alert, result)
        return result


class Dispatcher:
    def __init__(
        self,
        notifiers: Mapping[str, Notifier] | Iterable[Notifier],
        router: Router | None = None,
        ledger: Ledger | None = None,
        *,
        clock: Clock | None = None,
        policy: RetryPolicy | None = None,
        on_dead_letter: DeadLetterSink | None = None,
    ) -> None:
        items = notifiers.values() if isinstance(notifiers, Mapping) else notifiers
        self.clock: Clock = clock or SystemClock()
        self.policy = policy or RetryPolicy()
        self.ledger: Ledger = ledger if ledger is not None else MemoryLedger()
        self._router = router
        self._on_dead_letter = on_dead_letter
        self._lanes = {n.name: _Lane(self, n) for n in items}
        self.counts = DeliveryCounts()

    def route(self, alert: Alert) -> list[str]:
        if self._router is None:
            return list(self._lanes)
        return self._router.receivers_for(alert)

    def delivered(self, receiver: str, alert: Alert, phase: str) -> bool:
        """Whether ``receiver`` got (or gave up on) this episode's ``phase``."""
        return self.ledger.seen(_key(receiver, alert, phase))

    def submit(
        self, alert: Alert, only: Iterable[str] | None = None
    ) -> list[asyncio.Future[DeliveryResult]]:
        """Queue the alert on each routed receiver's lane (or those of ``only``) at once."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[DeliveryResult]] = []
        names = self.route(alert)
        if only is not None:
            keep = set(only)
            names = [n for n in names if n in keep]
        for name in names:
            future: asyncio.Future[DeliveryResult] = loop.create_future()
            future.add_done_callback(self._count)
            lane = self._lanes.get(name)
            if lane is None:
                future.set_result(
                    DeliveryResult(
                        name,
                        alert.fingerprint,
                        phase_of(alert),
                        Outcome.DEAD_LETTERED,
                        detail=f"no receiver named {name!r}",
                        attempts=0,
                    )
                )
                log.error("routing chose unknown receiver %r", name)
            else:
                lane.start()
                lane.queue.put_nowait((alert, future))
            futures.append(future)
        return futures

    async def dispatch(self, alert: Alert) -> DeliveryCounts:
        """Deliver to every routed receiver (concurrently) and wait for all of them."""
        counts = DeliveryCounts()
        for result in await asyncio.gather(*self.submit(alert)):
            counts.add(result)
        return counts

    async def drain(self) -> None:
        """Wait until every lane's queue is empty."""
        await asyncio.gather(*(lane.queue.join() for lane in self._lanes.values()))

    async def close(self) -> None:
        for lane in self._lanes.values():
            if lane.task is not None:
                lane.task.cancel()
        await asyncio.gather(
            *(lane.task for lane in self._lanes.values() if lane.task is not None),
            return_exceptions=True,
        )
        for lane in self._lanes.values():
            await lane.notifier.close()

    async def __aenter__(self) -> Dispatcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _count(self, future: asyncio.Future[DeliveryResult]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.counts.add(future.result())

    async def dead_letter(self, alert: Alert, result: DeliveryResult) -> None:
        record = DeadLetterRecord(
            receiver=result.receiver,
            alert_id=alert.alert_id,
            fingerprint=alert.fingerprint,
            phase=result.phase,
            reason=result.detail,
            http_status=result.http_status,
            attempts=result.attempts,
        )
        log.warning(
            "%s: dead-lettered %s %s: %s",
            record.receiver,
            record.phase,
            record.fingerprint,
            record.reason,
        )
        if self._on_dead_letter is not None:
            maybe = self._on_dead_letter(record)
            if inspect.isawaitable(maybe):
                await maybe
