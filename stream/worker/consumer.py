"""The batch data plane: whole fetches of the source topics, handed over as raw bytes.

Faust's own path turns every record into a message, routes it through the
conductor, then wraps it in an event inside a stream, and waits on two futures
per message on the way: a few hundred microseconds each, which capped a worker
at 3-5k events/s whatever the detectors cost. The engine works on column
batches anyway, so for the source topics this consumer takes the records that
aiokafka fetched, groups them by partition and hands each group to the ingest
loop through a bounded inbox; nothing per record is created beyond the bytes.

Faust keeps everything else: the consumer group and its assignor (equal
partition numbers of the source topics and the engine table on one worker),
table changelog recovery, commits, the web server. Records of other topics
(the changelog during recovery) take Faust's normal path.

Faust's private hooks used here are listed and checked in ``stream.compat``.

Acks: the ingest loop acks a partition "through" an offset once a snapshot
covers it; ``_new_offset`` turns that into the commit offset. Faust's own
bookkeeping wants every offset acked one by one, which would bring back the
per-record cost this class exists to remove.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from stream import compat

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Fetched:
    """One partition's share of one fetch, in offset order."""

    tp: TP
    raws: list[bytes]
    offsets: list[int]


class Inbox:
    """Fetches waiting for the ingest loop; bounded in records, so a slow engine
    stalls the fetcher (and aiokafka's prefetch) instead of growing memory."""

    def __init__(self, max_records: int) -> None:
        self.max_records = max(1, int(max_records))
        self._items: list[Fetched] = []
        self._records = 0
        self._changed = asyncio.Event()
        self.fetcher_waiting = False  # the fetcher waits for room (shown on /healthz)

    def __len__(self) -> int:
        return self._records

    async def room(self) -> None:
        """Wait until the inbox is below its bound."""
        while self._records >= self.max_records:
            self._changed.clear()
            self.fetcher_waiting = True
            try:
                await self._changed.wait()
            finally:
                self.fetcher_waiting = False

    def add(self, item: Fetched) -> None:
        """Never waits: the bound is kept by waiting for ``room`` before fetching, so it
        is exceeded by at most one fetch."""
        self._items.append(item)
        self._records += len(item.raws)
        self._changed.set()

    async def take(self, fill: int = 0, wait_s: float = 0.0) -> list[Fetched]:
        """Everything waiting (at least one fetch), merged per partition in arrival order.

        Once something is waiting, waits up to ``wait_s`` more for ``fill`` records.
        """
        while not self._items:
            self._changed.clear()
            await self._changed.wait()
        deadline = asyncio.get_running_loop().time() + wait_s
        while self._records < fill and self._records < self.max_records:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                break
        items, self._items, self._records = self._items, [], 0
        self._changed.set()
        return merge(items)

    def holds(self, tp: TP) -> bool:
        """Records of ``tp`` wait here."""
        return any(it.tp == tp for it in self._items)

    def discard(self, partitions: set[int]) -> int:
        """Drop waiting fetches of revoked partitions (their next owner reads them)."""
        keep = [it for it in self._items if it.tp.partition not in partitions]
        dropped = len(self._items) - len(keep)
        self._items = keep
        self._records = sum(len(it.raws) for it in keep)
        self._changed.set()
        return dropped


def merge(items: list[Fetched]) -> list[Fetched]:
    by_tp: dict[TP, Fetched] = {}
    for it in items:
        have = by_tp.get(it.tp)
        if have is None:
            by_tp[it.tp] = Fetched(it.tp, list(it.raws), list(it.offsets))
        else:
            have.raws.extend(it.raws)
            have.offsets.extend(it.offsets)
    return list(by_tp.values())


class PendingAcks:
    """Per partition, offsets acked and not committed yet, each with the futures of
    the sends that must reach the broker first."""

    def __init__(self) -> None:
        self._queues: dict[Any, list[tuple[int, list[Any]]]] = {}

    def add(self, tp: Any, offset: int, after: Iterable[Any] = ()) -> None:
        queue = self._queues.setdefault(tp, [])
        if queue and offset <= queue[-1][0]:
            return
        queue.append((offset, [f for f in after if not f.done()]))

    def partitions(self) -> list[Any]:
        return list(self._queues)

    def confirmed(self, tp: Any) -> int | None:
        """Pop and return the highest offset of ``tp`` whose sends all succeeded (None:
        nothing new). An offset whose sends are still in flight holds those after it."""
        queue = self._queues.get(tp, [])
        done: int | None = None
        while queue and all(f.done() for f in queue[0][1]):
            offset, sent = queue.pop(0)
            failed = [f for f in sent if f.cancelled() or f.exception() is not None]
            if failed:
                # That snapshot may be missing on the broker: keep this offset uncommitted;
                # a later ack, made safe by a later snapshot that did arrive, moves past it.
                why = "cancelled" if failed[0].cancelled() else repr(failed[0].exception())
                log.error(
                    "%s: changelog send failed (%s); offset %d not committed", tp, why, offset
                )
                continue
            done = offset
        if not queue:
            self._queues.pop(tp, None)
        return done


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread; its aiokafka consumer takes the fetch wait we set, and
    the Kafka 0.9 offset calls where the broker is that old."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        client = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.consumer, "fetch_wait_ms", None)
        if wait_ms is not None:
            compat.set_fetch_wait(client, wait_ms)
        if getattr(self.consumer, "legacy_offsets", False):
            compat.legacy_offsets(client)  # Kafka 0.9: this consumer only, not the process
        return client


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, with the source topics diverted into an ``Inbox``.

    ``divert(topics, inbox)`` must be called before the worker starts.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.fetch_wait_ms: int | None = None
        self.legacy_offsets = False
        super().__init__(*args, **kwargs)
        self._batch_topics: frozenset[str] = frozenset()
        self._inbox: Inbox | None = None
        self._through = PendingAcks()
        # Called with the monotonic start of each commit that succeeded (the worker marks
        # the engine snapshots saved before it as flushed to the changelog).
        self.on_committed: Callable[[float], None] | None = None

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def divert(
        self,
        topics: set[str],
        inbox: Inbox,
        fetch_wait_ms: int | None = None,
        legacy_offsets: bool = False,
    ) -> None:
        self._batch_topics = frozenset(topics)
        self._inbox = inbox
        self.fetch_wait_ms = fetch_wait_ms
        self.legacy_offsets = legacy_offsets

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        inbox = self._inbox
        if inbox is not None:
            # Backpressure before the fetch, never with fetched records in hand: Faust
            # delivers a fetch's records with no await in between, and a rebalance that
            # ran meanwhile (revoke, recovery seeks) would get stale records after its
            # seeks. Seen as a takeover whose changelog recovery never saw an event.
            await inbox.room()
        records, active = await super()._wait_next_records(timeout)
        if not records or inbox is None:
            return records, active
        rest: dict[TP, Any] = {}
        unread: dict[TP, int] = {}
        for tp, recs in records.items():
            if tp.topic not in self._batch_topics:
                rest[tp] = recs
            elif not recs or not self.flow_active:
                # Not handed over while a rebalance holds the flow: Faust seeks back to
                # the committed offsets afterwards, so these records come again.
                continue
            elif active is None or tp in active:
                compat.mark_read(self, tp, recs[-1].offset)
                inbox.add(Fetched(tp, [r.value for r in recs], [r.offset for r in recs]))
            else:
                unread[tp] = recs[0].offset
        for tp, offset in unread.items():
            await self._unread(tp, offset)
        return rest, active

    async def _unread(self, tp: TP, offset: int) -> None:
        """Put back a fetch of a partition paused since it was asked for.

        Faust passes its live set of active partitions to the fetch, so a pause while
        it waits (table recovery after an assignment) makes its records arrive for a
        partition no longer active. aiokafka's position is already past them and no
        seek follows, so dropping them skipped those offsets for good (seen as a
        takeover that read a partition from 100 when its snapshot covered 89)."""
        if tp not in self.assignment():
            return  # revoked: the next owner reads them
        await self.seek(tp, offset)

    async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        started = time.monotonic()
        did = bool(await super().commit(topics, start_new_transaction=start_new_transaction))
        if did and self.on_committed is not None:
            self.on_committed(started)
        return did

    def ack_through(self, tp: TP, offset: int, after: Iterable[Any] = ()) -> None:
        """Everything of ``tp`` up to ``offset`` is done; commit past it at the first
        commit once every future in ``after`` (the changelog sends that make it safe)
        has succeeded."""
        self._through.add(tp, offset, after)

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        yield from super()._filter_tps_with_pending_acks(topics)
        for tp in self._through.partitions():
            if topics is None or tp in topics or tp.topic in topics:
                yield tp

    def _new_offset(self, tp: TP) -> int | None:
        if tp.topic in self._batch_topics:
            offset = self._through.confirmed(tp)
            return None if offset is None else offset + 1
        return super()._new_offset(tp)  # type: ignore[no-any-return]


class BatchTransport(faust_aiokafka.Transport):
    Consumer = BatchConsumer
