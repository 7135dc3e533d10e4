"""Unsticks a table recovery whose changelog partitions never deliver an event.

Seen in CI on a worker taking over a dead peer's partitions: Faust's recovery sought
the engines' changelog and then waited forever ("No event received for active tp ...
since recovery start"), with the partitions assigned and the fetcher idle. Faust's
message loop drops every record below the partition's read offset, and that offset
is written both by the consumer thread (on seek) and by the message loop (after each
message), so a record drained around the seek can leave it above everything the
changelog will send. The root cause is not proven; this guard removes the symptom:
when recovery has seen nothing from a partition that still has records to read for
``after_s``, it clears that read offset and seeks the partition again, then logs it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from stream import compat

log = logging.getLogger(__name__)


class RecoveryGuard:
    def __init__(
        self, app: Any, after_s: float = 20.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.after_s = float(after_s)
        self.clock = clock
        self._last_try: dict[Any, float] = {}  # changelog partition -> when last sought
        self.reseeks = 0

    def stuck(self) -> dict[Any, int]:
        """Changelog partitions this recovery still needs but never heard from, and the
        offset recovery would seek them to."""
        rec = getattr(getattr(self.app, "tables", None), "recovery", None)
        started = compat.recovery_started_at(rec) if rec is not None else None
        if rec is None or not getattr(rec, "in_recovery", False) or started is None:
            self._last_try.clear()
            return {}
        now = self.clock()
        if now - started < self.after_s:
            return {}
        heard = compat.recovery_heard(rec)
        out: dict[Any, int] = {}
        for tp, left in rec.active_remaining().items():
            if left <= 0 or tp in heard:
                continue
            if now - self._last_try.get(tp, float("-inf")) < self.after_s:
                continue
            offset = rec.active_offsets.get(tp)
            out[tp] = 0 if offset is None or offset < 0 else int(offset)
        return out

    async def check(self) -> dict[Any, int]:
        stuck = self.stuck()
        if not stuck:
            return stuck
        consumer = self.app.consumer
        for tp in stuck:
            compat.forget_read(consumer, tp)
            self._last_try[tp] = self.clock()
        log.warning(
            "table recovery has had no event from %s for %.0f s although records remain; "
            "seeking them again",
            ", ".join(f"{tp.topic}/{tp.partition}@{off}" for tp, off in sorted(stuck.items())),
            self.after_s,
        )
        await consumer.seek_wait(stuck)
        self.reseeks += len(stuck)
        return stuck
