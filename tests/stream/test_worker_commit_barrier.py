"""Commits wait for the changelog: an acked offset is committed only once the
snapshot sends that make it safe have reached the broker (their futures succeeded).

Faust's commit flushes its producer buffer for at most 0.1 s without progress, so a
commit alone does not prove that the snapshots saved before it were written."""

from __future__ import annotations

import asyncio

import pytest

from stream.worker.consumer import Fetched, PendingAcks
from stream.worker.state import EngineStateTable


class Table:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.sent: list[asyncio.Future[None]] = []
        self.loop = asyncio.new_event_loop()

    def send_changelog(self, *args: object, **kwargs: object) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = self.loop.create_future()
        self.sent.append(fut)
        return fut


def test_state_reports_its_unconfirmed_sends_until_the_broker_confirms_them() -> None:
    table = Table()
    state = EngineStateTable(table, chunk_bytes=4)
    state.save(0, b"a snapshot of some bytes", {"t": 7})
    assert len(table.sent) >= 2  # chunks and the manifest
    assert state.unconfirmed(0) == table.sent
    assert state.unconfirmed(1) == []
    for fut in table.sent[:-1]:
        fut.set_result(None)
    assert state.unconfirmed(0) == [table.sent[-1]]  # the manifest is still in flight
    table.sent[-1].set_result(None)
    assert state.unconfirmed(0) == []
    table.loop.close()


def test_an_ack_is_committed_only_after_its_sends_succeed() -> None:
    loop = asyncio.new_event_loop()
    first, second = loop.create_future(), loop.create_future()
    acks = PendingAcks()
    acks.add("tp", 10, [first])
    acks.add("tp", 20, [first, second])
    acks.add("tp", 15)  # never backwards
    assert acks.confirmed("tp") is None  # 10 waits for its snapshot
    first.set_result(None)
    assert acks.confirmed("tp") == 10
    assert acks.partitions() == ["tp"]  # 20 still waits
    assert acks.confirmed("tp") is None
    second.set_result(None)
    assert acks.confirmed("tp") == 20
    assert acks.partitions() == [] and acks.confirmed("tp") is None
    loop.close()


def test_a_failed_send_holds_its_offset_but_not_later_safe_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    lost, later = loop.create_future(), loop.create_future()
    acks = PendingAcks()
    acks.add("tp", 10, [lost])
    lost.set_exception(OSError("broker gone"))
    assert acks.confirmed("tp") is None  # 10 is not committed
    assert "offset 10 not committed" in caplog.text and "broker gone" in caplog.text
    acks.add("tp", 30, [later])
    later.set_result(None)
    assert acks.confirmed("tp") == 30
    loop.close()


def test_sends_already_done_when_acked_do_not_hold_it() -> None:
    loop = asyncio.new_event_loop()
    done = loop.create_future()
    done.set_result(None)
    acks = PendingAcks()
    acks.add("tp", 5, [done])
    assert acks.confirmed("tp") == 5
    loop.close()


class _Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.value = b"{}"


def test_a_fetch_for_a_partition_paused_meanwhile_is_put_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Faust hands the fetch its live set of active partitions; a pause while the fetch
    # waits (table recovery) returns records of a partition no longer active. Dropping
    # them without a seek skipped those offsets for good.
    from faust.transport.drivers import aiokafka as faust_aiokafka
    from faust.types import TP

    from stream.worker.consumer import BatchConsumer, Inbox

    paused, running, revoked = TP("src", 0), TP("src", 1), TP("src", 2)
    fetched = {
        paused: [_Record(0), _Record(1)],
        running: [_Record(5)],
        revoked: [_Record(9)],
    }

    async def fake_wait(self: object, timeout: float) -> tuple[object, object]:
        return fetched, {running}

    monkeypatch.setattr(faust_aiokafka.Consumer, "_wait_next_records", fake_wait)
    seeks: list[tuple[TP, int]] = []
    consumer = object.__new__(BatchConsumer)
    consumer._batch_topics = frozenset({"src"})
    consumer._inbox = inbox = Inbox(100)
    consumer._read_offset = {}
    consumer.flow_active = True

    async def seek(tp: TP, offset: int) -> None:
        seeks.append((tp, offset))

    monkeypatch.setattr(consumer, "assignment", lambda: {paused, running})
    monkeypatch.setattr(consumer, "seek", seek)

    async def run() -> list[Fetched]:
        rest, _ = await consumer._wait_next_records(1.0)
        assert rest == {}
        return await inbox.take()

    taken = asyncio.run(run())
    assert [(f.tp, f.offsets) for f in taken] == [(running, [5])]  # type: ignore[attr-defined]
    assert seeks == [(paused, 0)]  # read again once resumed; the revoked one is not ours
