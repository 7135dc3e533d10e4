"""The lock that orders batches, ticks and rebalances, and says who holds it.

When a worker stops making progress, the first question at 3 a.m. is what it is
waiting on. Every holder of the lock names itself; ``/healthz`` shows the holder
and for how long, and ``Watchdog.check`` logs the holder's stack once it has
held the lock longer than a limit, so a stuck await shows up in the logs.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

log = logging.getLogger("llmwatch.worker")


class TrackedLock:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = asyncio.Lock()
        self._clock = clock
        self.holder: str | None = None
        self.task: asyncio.Task[Any] | None = None
        self.since = 0.0

    @asynccontextmanager
    async def held(self, name: str) -> AsyncIterator[None]:
        async with self._lock:
            self.holder, self.task, self.since = name, asyncio.current_task(), self._clock()
            try:
                yield
            finally:
                self.holder, self.task = None, None

    def held_for(self) -> float:
        return 0.0 if self.holder is None else self._clock() - self.since

    def state(self) -> dict[str, Any]:
        return {"holder": self.holder, "held_s": round(self.held_for(), 3)}


class Watchdog:
    """Logs, at most once per ``limit_s``, the stack of a holder stuck past ``limit_s``."""

    def __init__(self, lock: TrackedLock, limit_s: float = 30.0) -> None:
        self.lock = lock
        self.limit_s = float(limit_s)
        self._episode = -1.0  # ``since`` of the holding last reported
        self._last = 0.0  # how long it had been held then

    def check(self) -> bool:
        held = self.lock.held_for()
        if held < self.limit_s:
            return False
        if self._episode == self.lock.since and held - self._last < self.limit_s:
            return True
        self._episode, self._last = self.lock.since, held
        stack = io.StringIO()
        if self.lock.task is not None:
            self.lock.task.print_stack(file=stack)
        log.error(
            "worker stalled: %s has held the processing lock for %.0f s; its stack:\n%s",
            self.lock.holder,
            held,
            stack.getvalue(),
        )
        return True
