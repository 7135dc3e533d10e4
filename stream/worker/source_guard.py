"""Unsticks an assigned source partition that has records to read and never delivers them.

Seen once in CI (Kafka 0.9, ``test_worker_scaleout``): after a peer was killed, the
survivor was assigned its partition and restored its snapshot, then never received a
record of it; the rest of the worker ran on. The cause is not proven. What can
leave a partition so is known: Faust pauses source partitions during table recovery
and resumes them after, and a fetch in flight across those steps can return records
after the seek to the committed offsets (``BatchConsumer`` puts back what it can
see). This guard removes the symptom whatever the cause, and says what it found:
when a partition's broker end is past the next offset its engine needs, the worker
is not rebalancing or recovering, and that offset has not moved for ``after_s``, it
resumes the partition (if Faust has it paused) and seeks it to that offset. Seeking
back is always safe: ``Progress`` drops the events a snapshot or an earlier batch
already covers, so the worst a wrong call costs is a re-read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from faust.types import TP

from stream import compat

log = logging.getLogger(__name__)

# Per source partition: the next offset its engine needs (None: ask the broker).
NextNeeded = Callable[[TP], int | None]


class SourceGuard:
    def __init__(
        self,
        app: Any,
        topics: Collection[str],
        next_needed: NextNeeded,
        waiting: Callable[[TP], bool] = lambda tp: False,
        after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.next_needed = next_needed
        self.waiting = waiting  # records of it wait in the inbox (not stuck: busy)
        self.after_s = float(after_s)
        self.clock = clock
        self._since: dict[TP, tuple[int, float]] = {}  # tp -> (offset needed, since when)
        self.reseeks = 0

    def _settled(self) -> bool:
        app, consumer = self.app, self.app.consumer
        recovery = getattr(getattr(app, "tables", None), "recovery", None)
        return (
            not getattr(app, "rebalancing", False)
            and not getattr(recovery, "in_recovery", False)
            and bool(getattr(consumer, "flow_active", True))
        )

    async def _needed(self, tps: list[TP]) -> dict[TP, int]:
        need = {tp: self.next_needed(tp) for tp in tps}
        unknown = [tp for tp, off in need.items() if off is None]
        if unknown:  # nothing processed and no snapshot: the start is the earliest record
            need.update(await self.app.consumer.earliest_offsets(*unknown))
        return {tp: int(off) for tp, off in need.items() if off is not None}

    async def stuck(self) -> dict[TP, int]:
        """Source partitions with records beyond the offset their engine needs next, where
        that offset has not moved for ``after_s``; and the offset to seek them to."""
        consumer = self.app.consumer
        tps = sorted(tp for tp in consumer.assignment() if tp.topic in self.topics)
        if not tps or not self._settled():
            self._since.clear()
            return {}
        need = await self._needed(tps)
        ends: Mapping[TP, int] = await consumer.highwaters(*need)
        now, out = self.clock(), {}
        for tp, off in need.items():
            if ends.get(tp, -1) <= off or self.waiting(tp):
                self._since.pop(tp, None)
                continue
            was, since = self._since.setdefault(tp, (off, now))
            if was != off:  # it moved: flowing, only behind
                self._since[tp] = (off, now)
            elif now - since >= self.after_s:
                out[tp] = off
        return out

    async def check(self) -> dict[TP, int]:
        try:
            stuck = await self.stuck()
        except Exception as exc:  # the broker is away: the next check asks again
            log.info("source guard: offsets unavailable (%r)", exc)
            return {}
        if not stuck:
            return stuck
        consumer = self.app.consumer
        paused = compat.paused_partitions(consumer)
        for tp, off in sorted(stuck.items()):
            position = await consumer.position(tp)
            log.warning(
                "source partition %s/%d has had records to read past offset %d for %.0f s "
                "and none arrived (fetch position %s, %s); resuming and seeking it there",
                tp.topic,
                tp.partition,
                off,
                self.after_s,
                position,
                "paused" if tp in paused else "not paused",
            )
            self._since[tp] = (off, self.clock())
        consumer.resume_partitions(set(stuck))
        await consumer.seek_wait(stuck)
        self.reseeks += len(stuck)
        return stuck
