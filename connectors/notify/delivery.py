"""The dispatcher: each group notification to its receiver's lane.

Each receiver has one queue and one worker, so an outage at one receiver only
delays that receiver's queue, and a receiver sees a group's messages in the order
they were submitted (a trigger before its resolve). Delivery is at least once; the
ledger, keyed by (receiver, group key, content digest), makes a replay after a
restart a no-op instead of a second page. Which receivers get what is decided
before this point, by the pipeline's route tree (stream/alerting).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from schemas.notification import Notification

from .base import Clock, DeliveryResult, Notifier, Outcome, SystemClock
from .retry import Retrier, RetryPolicy, TokenBucket
from .stores import Ledger, LedgerStats, MemoryLedger, record_until_stored

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
    group_key: str
    alert_ids: tuple[str, ...]
    phase: str
    reason: str
    http_status: int | None
    attempts: int


DeadLetterSink = Callable[[DeadLetterRecord], Awaitable[None] | None]


def ledger_key(receiver: str, note: Notification) -> str:
    return f"{receiver}|{note.group_key}|{note.digest()}"


_Job = tuple[Notification, "asyncio.Future[DeliveryResult]"]


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
            note, future = await self.queue.get()
            try:
                result = await self._deliver(note)
                if not future.done():
                    future.set_result(result)
            except BaseException as exc:
                if not future.done():
                    future.set_exception(exc)
                raise
            finally:
                self.queue.task_done()

    async def _record(self, key: str, outcome: str) -> None:
        """Into the ledger before the job counts as done; on a full disk this lane waits."""
        d = self._dispatcher
        await record_until_stored(
            d.ledger, key, outcome, clock=d.clock, lane=self.notifier.name, stats=d.ledger_stats
        )

    async def _deliver(self, note: Notification) -> DeliveryResult:
        name = self.notifier.name
        ledger = self._dispatcher.ledger
        key = ledger_key(name, note)
        if ledger.seen(key):
            return DeliveryResult(
                name, note.group_key, note.phase, Outcome.DEDUPLICATED, attempts=0
            )
        try:
            result = await self.retrier.deliver(note)
        except Exception as exc:
            # A notifier must not raise; if one does, its message may hold anything.
            result = DeliveryResult(
                name,
                note.group_key,
                note.phase,
                Outcome.PERMANENT,
                detail=f"notifier raised {type(exc).__name__}",
            )
        if result.outcome is Outcome.SENT:
            await self._record(key, "sent")
            log.info("%s: delivered %s %s", name, note.phase, note.group_key)
            return result
        result = result.but(outcome=Outcome.DEAD_LETTERED)
        # Recorded too: a restart must not retry (and re-page) what was given up on.
        await self._record(key, "dead_lettered")
        await self._dispatcher.dead_letter(note, result)
        return result


class Dispatcher:
    def __init__(
        self,
        notifiers: Mapping[str, Notifier] | Iterable[Notifier],
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
        self._on_dead_letter = on_dead_letter
        self._lanes = {n.name: _Lane(self, n) for n in items}
        self.counts = DeliveryCounts()
        self.ledger_stats = LedgerStats()  # failed ledger writes, lanes paused on them

    @property
    def receivers(self) -> list[str]:
        return list(self._lanes)

    def submit(self, note: Notification) -> asyncio.Future[DeliveryResult]:
        """Queue the notification on its receiver's lane; the future gives the outcome."""
        future: asyncio.Future[DeliveryResult] = asyncio.get_running_loop().create_future()
        future.add_done_callback(self._count)
        lane = self._lanes.get(note.receiver)
        if lane is None:
            future.set_result(
                DeliveryResult(
                    note.receiver,
                    note.group_key,
                    note.phase,
                    Outcome.DEAD_LETTERED,
                    detail=f"no receiver named {note.receiver!r}",
                    attempts=0,
                )
            )
            log.error("routing chose unknown receiver %r", note.receiver)
        else:
            lane.start()
            lane.queue.put_nowait((note, future))
        return future

    async def dispatch(self, notes: Iterable[Notification]) -> DeliveryCounts:
        """Deliver (each receiver on its own lane, concurrently) and wait for all of them."""
        counts = DeliveryCounts()
        for result in await asyncio.gather(*(self.submit(n) for n in notes)):
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

    async def dead_letter(self, note: Notification, result: DeliveryResult) -> None:
        record = DeadLetterRecord(
            receiver=result.receiver,
            group_key=note.group_key,
            alert_ids=tuple(a.alert.alert_id for a in note.alerts),
            phase=result.phase,
            reason=result.detail,
            http_status=result.http_status,
            attempts=result.attempts,
        )
        log.warning(
            "%s: dead-lettered %s %s: %s",
            record.receiver,
            record.phase,
            record.group_key,
            record.reason,
        )
        if self._on_dead_letter is not None:
            maybe = self._on_dead_letter(record)
            if inspect.isawaitable(maybe):
                await maybe
