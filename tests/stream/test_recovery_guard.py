"""The recovery guard re-seeks changelog partitions a table recovery never hears from."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from stream.worker.recovery_guard import RecoveryGuard

CL0 = TP("app-engines-changelog", 0)
CL1 = TP("app-engines-changelog", 1)


class FakeRecovery:
    """The attributes of Faust's Recovery the guard reads, with Faust's meanings."""

    def __init__(self, started: float | None) -> None:
        self.in_recovery = started is not None
        self._recovery_started_at = started
        self._active_events_received_at: dict[TP, float] = {}
        self.active_offsets: Counter[TP] = Counter({CL0: -1, CL1: 7})
        self.active_highwaters: Counter[TP] = Counter({CL0: 12, CL1: 30})

    def active_remaining(self) -> Counter[TP]:
        hw, off = self.active_highwaters, self.active_offsets
        return Counter({tp: h - off[tp] for tp, h in hw.items()})


class FakeConsumer:
    def __init__(self) -> None:
        self._read_offset: dict[TP, int | None] = {CL0: 400, CL1: 500}
        self.sought: list[dict[TP, int]] = []

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.sought.append(dict(partitions))


def guard_for(rec: FakeRecovery, now: list[float]) -> tuple[RecoveryGuard, FakeConsumer]:
    consumer = FakeConsumer()
    app: Any = SimpleNamespace(tables=SimpleNamespace(recovery=rec), consumer=consumer)
    return RecoveryGuard(app, after_s=20.0, clock=lambda: now[0]), consumer


def test_silent_partitions_are_sought_again_after_the_grace_period() -> None:
    now = [100.0]
    rec = FakeRecovery(started=90.0)
    guard, consumer = guard_for(rec, now)
    assert asyncio.run(guard.check()) == {} and consumer.sought == []  # only 10 s in
    now[0] = 111.0
    rec._active_events_received_at[CL1] = 105.0  # CL1 is flowing: left alone
    assert asyncio.run(guard.check()) == {CL0: 0}
    # The stale read offset that made Faust drop the changelog's records is gone.
    assert CL0 not in consumer._read_offset and consumer._read_offset[CL1] == 500
    assert consumer.sought == [{CL0: 0}] and guard.reseeks == 1
    now[0] = 120.0
    assert asyncio.run(guard.check()) == {}  # not again within after_s
    now[0] = 132.0
    assert asyncio.run(guard.check()) == {CL0: 0}


def test_resumes_from_the_offset_recovery_reached() -> None:
    now = [200.0]
    rec = FakeRecovery(started=150.0)
    guard, consumer = guard_for(rec, now)
    assert asyncio.run(guard.check()) == {CL0: 0, CL1: 7}
    assert consumer.sought == [{CL0: 0, CL1: 7}]


def test_nothing_outside_recovery_or_when_caught_up() -> None:
    now = [500.0]
    guard, consumer = guard_for(FakeRecovery(started=None), now)
    assert asyncio.run(guard.check()) == {}
    done = FakeRecovery(started=100.0)
    done.active_offsets = Counter({CL0: 12, CL1: 30})  # nothing left to read
    guard, consumer = guard_for(done, now)
    assert asyncio.run(guard.check()) == {} and consumer.sought == []
