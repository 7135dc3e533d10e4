"""The processing lock names its holder; a holder stuck past the limit logs its stack."""

from __future__ import annotations

import asyncio
import logging

import pytest

from stream.worker.watchdog import TrackedLock, Watchdog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_stuck_holder_is_named_and_its_stack_logged_once_per_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    lock = TrackedLock(clock)
    dog = Watchdog(lock, limit_s=30.0)
    release = asyncio.Event()

    async def stuck_in_send() -> None:
        async with lock.held("batch"):
            await release.wait()

    async def scenario() -> list[bool]:
        assert lock.state() == {"holder": None, "held_s": 0.0}
        task = asyncio.ensure_future(stuck_in_send())
        await asyncio.sleep(0)
        seen = [dog.check()]  # just taken: fine
        clock.now += 31
        seen.append(dog.check())  # stuck: logged
        clock.now += 5
        seen.append(dog.check())  # still stuck, already logged
        assert lock.state() == {"holder": "batch", "held_s": 36.0}
        clock.now += 30
        seen.append(dog.check())  # a limit later: logged again
        release.set()
        await task
        seen.append(dog.check())
        return seen

    with caplog.at_level(logging.ERROR, logger="llmwatch.worker"):
        assert asyncio.run(scenario()) == [False, True, True, True, False]
    reports = [r.getMessage() for r in caplog.records if "stalled" in r.getMessage()]
    assert len(reports) == 2
    assert "batch has held the processing lock for 31 s" in reports[0]
    assert "stuck_in_send" in reports[0]  # the stack says where it waits
    assert lock.state()["holder"] is None
