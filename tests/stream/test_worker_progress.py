"""The worker's offset bookkeeping (Progress) and its fetch inbox, without a broker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from faust.types import TP

from stream.worker.consumer import Fetched, Inbox, merge
from stream.worker.state import EngineStateTable, Progress


@dataclass
class Table:
    data: dict[bytes, bytes] = field(default_factory=dict)

    def send_changelog(self, *args: object, **kwargs: object) -> None:
        pass


@dataclass
class Acks:
    through: dict[tuple[str, int], int] = field(default_factory=dict)

    def __call__(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        assert offset >= self.through.get(key, -1), "acks must not go backwards"
        self.through[key] = offset


def test_progress_drops_what_the_snapshot_holds_and_acks_only_after_two_saves() -> None:
    state = EngineStateTable(Table())
    state.save(0, b"snapshot", {"t": 4})
    acks = Acks()
    progress = Progress(state, acks)
    assert progress.seen([0]) == {("t", 0): 4}  # before any batch: from the manifest
    assert progress.fresh("t", 0, [3, 4, 5, 6]) == 2
    assert acks.through == {("t", 0): 4}  # replayed and loaded: acked at once
    progress.advance("t", 0, 6)
    assert progress.offsets(0) == {"t": 6}
    assert acks.through == {("t", 0): 4}  # processed, not saved: not acked
    assert progress.held() == [0]
    progress.release([0])  # saved: the loaded snapshot (4) becomes the older kept one
    assert acks.through == {("t", 0): 4}
    progress.release([0])  # saved again: now two snapshots cover 6
    assert acks.through == {("t", 0): 6} and progress.held() == []
    progress.forget([0])
    assert progress.offsets(0) == {} and progress.seen([0]) == {("t", 0): 4}


def test_redelivered_events_wait_for_two_saves() -> None:
    acks = Acks()
    progress = Progress(EngineStateTable(Table()), acks)
    assert progress.fresh("t", 1, [0, 1, 2]) == 0
    progress.advance("t", 1, 2)
    # A rebalance seeks back: 1..2 come again while the engine holding them is unsaved.
    assert progress.fresh("t", 1, [1, 2, 3]) == 2
    assert acks.through == {}
    progress.release([1])
    assert acks.through == {}
    progress.release([1])
    assert acks.through == {("t", 1): 2}
    # Now saved twice: a second re-delivery is acked without waiting.
    assert progress.fresh("t", 1, [2]) == 1
    assert acks.through == {("t", 1): 2}


def test_merge_keeps_offset_order_per_partition() -> None:
    a, b = TP("t", 0), TP("t", 1)
    items = [
        Fetched(a, [b"1", b"2"], [1, 2]),
        Fetched(b, [b"x"], [7]),
        Fetched(a, [b"3"], [3]),
    ]
    out = {f.tp: f for f in merge(items)}
    assert out[a].offsets == [1, 2, 3] and out[a].raws == [b"1", b"2", b"3"]
    assert out[b].offsets == [7]
    assert items[0].offsets == [1, 2], "inputs are not mutated"


def test_inbox_is_bounded_and_drops_revoked_partitions() -> None:
    async def scenario() -> tuple[bool, list[int], int]:
        inbox = Inbox(max_records=3)
        await inbox.room()
        inbox.add(Fetched(TP("t", 0), [b"a", b"b"], [0, 1]))
        inbox.add(Fetched(TP("t", 1), [b"c"], [0]))
        waiting = asyncio.ensure_future(inbox.room())
        await asyncio.sleep(0)
        was_blocked = not waiting.done()
        assert inbox.discard({1}) == 1  # frees room: the fetcher may fetch again
        await asyncio.wait_for(waiting, 1)
        inbox.add(Fetched(TP("t", 0), [b"d"], [2]))
        taken = await inbox.take()
        return was_blocked, [o for f in taken for o in f.offsets], len(inbox)

    was_blocked, offsets, left = asyncio.run(scenario())
    assert was_blocked
    assert offsets == [0, 1, 2]
    assert left == 0


def test_inbox_take_waits_briefly_for_a_fuller_batch() -> None:
    async def scenario() -> tuple[list[int], list[int], float]:
        inbox = Inbox(max_records=100)
        loop = asyncio.get_running_loop()

        async def trickle() -> None:
            for i in range(1, 4):
                await asyncio.sleep(0.01)
                inbox.add(Fetched(TP("t", 0), [b"x"], [i]))

        inbox.add(Fetched(TP("t", 0), [b"x"], [0]))
        feeder = asyncio.ensure_future(trickle())
        filled = await inbox.take(fill=4, wait_s=5.0)  # returns once 4 are in, not after 5 s
        await feeder
        inbox.add(Fetched(TP("t", 0), [b"y"], [9]))
        began = loop.time()
        short = await inbox.take(fill=50, wait_s=0.05)  # gives up waiting after 0.05 s
        return (
            [o for f in filled for o in f.offsets],
            [o for f in short for o in f.offsets],
            (loop.time() - began),
        )

    filled, short, waited = asyncio.run(scenario())
    assert filled == [0, 1, 2, 3]
    assert short == [9]
    assert 0.04 <= waited < 2.0
