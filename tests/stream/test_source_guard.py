"""The source guard re-seeks a source partition that has records and delivers none."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from stream import compat
from stream.worker.source_guard import SourceGuard

GPU0 = TP("llmwatch.gpu", 0)
GPU1 = TP("llmwatch.gpu", 1)
CL0 = TP("app-engines-changelog", 0)


class FakeConsumer:
    """What the guard calls on Faust's consumer, with Faust's meanings."""

    def __init__(self) -> None:
        self.flow_active = True
        self._paused_partitions: set[TP] = {GPU0}
        self.ends = {GPU0: 50, GPU1: 80}
        self.earliest = {GPU0: 0, GPU1: 0}
        self.sought: list[dict[TP, int]] = []
        self.resumed: list[set[TP]] = []

    def assignment(self) -> set[TP]:
        return {GPU0, GPU1, CL0}

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.earliest[tp] for tp in tps}

    async def position(self, tp: TP) -> int:
        return self.ends[tp]

    def resume_partitions(self, tps: set[TP]) -> None:
        self.resumed.append(set(tps))
        self._paused_partitions -= tps

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.sought.append(dict(partitions))


def setup(needed: dict[TP, int | None], now: list[float]) -> tuple[SourceGuard, FakeConsumer, Any]:
    consumer = FakeConsumer()
    recovery = SimpleNamespace(in_recovery=False)
    app: Any = SimpleNamespace(
        consumer=consumer, rebalancing=False, tables=SimpleNamespace(recovery=recovery)
    )
    guard = SourceGuard(
        app, {"llmwatch.gpu"}, needed.__getitem__, after_s=30.0, clock=lambda: now[0]
    )
    return guard, consumer, app


def test_a_partition_whose_needed_offset_stands_still_is_resumed_and_sought() -> None:
    now = [0.0]
    # GPU0: never a batch and no snapshot (from the earliest, 0); GPU1 at 40 of 80.
    needed: dict[TP, int | None] = {GPU0: None, GPU1: 40}
    guard, consumer, _ = setup(needed, now)
    assert asyncio.run(guard.check()) == {}  # first sight starts the clock
    now[0] = 20.0
    needed[GPU1] = 60  # GPU1 moves: flowing, only behind
    assert asyncio.run(guard.check()) == {}
    now[0] = 31.0
    assert asyncio.run(guard.check()) == {GPU0: 0}
    assert consumer.sought == [{GPU0: 0}] and consumer.resumed == [{GPU0}]
    assert compat.paused_partitions(consumer) == set() and guard.reseeks == 1
    now[0] = 40.0
    assert asyncio.run(guard.check()) == {}  # the clock restarted at the seek
    now[0] = 52.0
    assert asyncio.run(guard.check()) == {GPU1: 60}  # stood still at 60 since 20 s


def test_caught_up_waiting_or_rebalancing_partitions_are_left_alone() -> None:
    now = [0.0]
    needed: dict[TP, int | None] = {GPU0: 50, GPU1: 10}  # GPU0 has read all there is
    guard, consumer, app = setup(needed, now)
    guard.waiting = lambda tp: tp == GPU1  # GPU1's records wait in the inbox
    for t in (0.0, 40.0, 80.0):
        now[0] = t
        assert asyncio.run(guard.check()) == {}
    guard.waiting = lambda tp: False
    app.rebalancing = True
    now[0] = 200.0
    assert asyncio.run(guard.check()) == {}
    app.rebalancing = False  # settled again: the clock starts afresh
    now[0] = 210.0
    assert asyncio.run(guard.check()) == {}
    app.tables.recovery.in_recovery = True
    now[0] = 250.0
    assert asyncio.run(guard.check()) == {}
    assert consumer.sought == [] and guard.reseeks == 0


def test_an_unreachable_broker_skips_the_check() -> None:
    now = [0.0]
    guard, consumer, _ = setup({GPU0: 0, GPU1: 0}, now)

    async def away(*tps: TP) -> dict[TP, int]:
        raise ConnectionError("broker away")

    consumer.highwaters = away  # type: ignore[method-assign]
    assert asyncio.run(guard.check()) == {} and consumer.sought == []
