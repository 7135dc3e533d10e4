"""The delivery ledger on disk: survives restarts, torn writes, the old format, a full
disk and a corrupt file; compacts."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.notify import JsonFileLedger, stores
from connectors.notify.stores import LedgerStats, record_until_stored


def test_entries_survive_a_restart_and_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = JsonFileLedger(path)
    ledger.record("pd|fp1|1.000|firing", "sent")
    ledger.record("pd|fp2|1.000|firing", "dead_lettered")
    ledger.close()
    with path.open("a") as fh:
        fh.write('["pd|fp3|1.000|fir')  # the crash came mid-write
    again = JsonFileLedger(path)
    assert again.seen("pd|fp1|1.000|firing") and again.outcome("pd|fp2|1.000|firing") == (
        "dead_lettered"
    )
    assert not again.seen("pd|fp3|1.000|firing")
    again.record("pd|fp4|1.000|firing", "sent")  # must not be glued to the torn line
    again.close()
    assert JsonFileLedger(path).seen("pd|fp4|1.000|firing")


def test_the_old_single_object_format_is_read_and_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps({"pd|fp1|1.000|firing": "sent"}))
    ledger = JsonFileLedger(path)
    ledger.record("pd|fp2|1.000|firing", "sent")
    ledger.close()
    reread = JsonFileLedger(path)
    assert reread.seen("pd|fp1|1.000|firing") and reread.seen("pd|fp2|1.000|firing")


def test_the_log_is_compacted_and_capacity_drops_the_oldest(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = JsonFileLedger(path, capacity=10)
    for i in range(2000):
        ledger.record(f"k{i}", "sent")
    ledger.close()
    lines = path.read_text().splitlines()
    assert len(lines) < 1100  # rewritten, not 2000 lines long
    reread = JsonFileLedger(path, capacity=10)
    assert reread.seen("k1999") and not reread.seen("k0")
    assert len(reread.snapshot()) == 10


# -- durability: store first, remember after; a full disk pauses, a corrupt file is set aside


class _Clock:
    """Time moves only when someone sleeps; sleeping never waits for the wall clock."""

    def __init__(self, on_sleep: Callable[[int], None] | None = None) -> None:
        self.t = 1_700_000_000.0
        self.sleeps: list[float] = []
        self._on_sleep = on_sleep

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        if self._on_sleep is not None:
            self._on_sleep(len(self.sleeps))
        await asyncio.sleep(0)


def _enospc(*args: object) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_fsync_remembers_nothing_and_leaves_the_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = JsonFileLedger(path)
    ledger.record("pd|fp1|d|firing", "sent")
    before = path.read_bytes()
    monkeypatch.setattr(stores, "_os_fsync", _enospc)
    with pytest.raises(OSError, match="No space"):
        ledger.record("pd|fp2|d|firing", "sent")
    # Not remembered (so the lane retries it) and not half on disk.
    assert not ledger.seen("pd|fp2|d|firing") and path.read_bytes() == before
    monkeypatch.undo()
    ledger.record("pd|fp2|d|firing", "sent")
    ledger.close()
    assert path.read_text().splitlines() == [
        '["pd|fp1|d|firing","sent"]',
        '["pd|fp2|d|firing","sent"]',
    ]


def test_a_write_torn_by_a_full_disk_is_cut_before_the_next_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = JsonFileLedger(path)
    ledger.record("a", "sent")
    real_write = os.write

    calls: list[int] = []

    def half_then_full(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:4]))  # the disk took 4 bytes...
        return _enospc()  # ...and then had no more

    monkeypatch.setattr(stores, "_os_write", half_then_full)
    monkeypatch.setattr(os, "ftruncate", _enospc)  # and the undo failed as well
    with pytest.raises(OSError):
        ledger.record("b", "sent")
    monkeypatch.undo()
    assert path.read_bytes().endswith(b'\n["b"')  # the torn write, still there
    ledger.record("c", "sent")  # opens again: cuts the torn tail first
    ledger.close()
    assert path.read_text().splitlines() == ['["a","sent"]', '["c","sent"]']
    assert JsonFileLedger(path).snapshot() == {"a": "sent", "c": "sent"}


def test_a_lane_pauses_on_a_full_disk_and_stores_the_record_once_it_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = JsonFileLedger(path)
    monkeypatch.setattr(stores, "_os_fsync", _enospc)
    stats = LedgerStats()
    paused_during: list[set[str]] = []

    def on_sleep(n: int) -> None:
        paused_during.append(set(stats.paused))
        if n == 3:  # space is freed after the third wait
            monkeypatch.setattr(stores, "_os_fsync", os.fsync)

    clock = _Clock(on_sleep)

    async def main() -> None:
        await record_until_stored(
            ledger, "pd|fp1|d|firing", "sent", clock=clock, lane="pd", stats=stats
        )

    asyncio.run(main())
    assert clock.sleeps == [1.0, 2.0, 4.0]  # backoff, on the injected clock
    assert stats.write_failures == 3 and paused_during == [{"pd"}] * 3 and stats.paused == set()
    ledger.close()
    # Stored exactly once: a restart knows the page went out and will not send it again.
    assert path.read_text().splitlines() == ['["pd|fp1|d|firing","sent"]']
    assert JsonFileLedger(path).seen("pd|fp1|d|firing")


_CHILD = r"""
import asyncio, json, os, resource, signal, sys
from connectors.notify.stores import JsonFileLedger, LedgerStats, record_until_stored
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit: EFBIG, not a signal
path = sys.argv[1]
ledger = JsonFileLedger(path)
ledger.record("k0", "sent")
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 5, hard))  # "disk full"

class Clock:
    sleeps = 0
    def now(self): return 0.0
    async def sleep(self, s):
        Clock.sleeps += 1
        if Clock.sleeps == 2:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again

stats = LedgerStats()
asyncio.run(record_until_stored(ledger, "k1", "sent", clock=Clock(), lane="pd", stats=stats))
ledger.close()
print(json.dumps({"failures": stats.write_failures, "lines": open(path).read().splitlines()}))
"""


def test_a_real_file_size_limit_pauses_then_resumes_without_a_torn_line(tmp_path: Path) -> None:
    # A real OSError from the kernel (EFBIG under RLIMIT_FSIZE), in a child process so
    # the limit touches nothing else.
    path = tmp_path / "ledger.jsonl"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True, text=True, cwd=root, timeout=60, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout)
    assert result == {"failures": 2, "lines": ['["k0","sent"]', '["k1","sent"]']}
    assert "could not store delivery k1" in out.stderr and "lane resumed" in out.stderr


@pytest.mark.parametrize(
    ("content", "problem", "kept"),
    [
        (b'["a","sent"]\n\xff\xfe\x00garbage\n["b","sent"]\n', "line 2", {"a", "b"}),
        (b"hello\nworld\n", "line 1", set()),
        (b'["a","sent"]\n{"not": "a pair"}\n["b"]\n', "line 2", {"a"}),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "line 1", set()),
    ],
    ids=["not-utf8", "not-json", "not-pairs", "binary"],
)
def test_a_corrupt_ledger_is_set_aside_and_start_up_continues(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, problem: str, kept: set[str]
) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="llmwatch.notify"):
        ledger = JsonFileLedger(path)
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "is corrupt" in error.getMessage() and problem in error.getMessage()
    assert (tmp_path / "ledger.jsonl.corrupt-1").read_bytes() == content  # kept for a person
    assert set(ledger.snapshot()) == kept
    ledger.record("c", "sent")
    ledger.close()
    assert set(JsonFileLedger(path).snapshot()) == kept | {"c"}
    assert not (tmp_path / "ledger.jsonl.corrupt-2").exists()  # the rewrite is clean


def test_each_refused_write_is_reported_with_its_lane(tmp_path: Path) -> None:
    class Refusing:
        calls = 0

        def seen(self, key: str) -> bool:
            return False

        def record(self, key: str, outcome: str) -> None:
            Refusing.calls += 1
            if Refusing.calls <= 2:
                raise OSError(errno.EIO, "Input/output error")

    reported: list[str] = []
    stats = LedgerStats(on_failure=reported.append)  # the notifier counts a metric here
    asyncio.run(
        record_until_stored(Refusing(), "k", "sent", clock=_Clock(), lane="slack", stats=stats)
    )
    assert reported == ["slack", "slack"] and stats.write_failures == 2 and Refusing.calls == 3
