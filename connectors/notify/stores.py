"""Small durable stores: the delivery ledger and Slack's message timestamps.

The message store is a JSON file replaced atomically (write a temp file, fsync,
rename), so a crash leaves either the old or the new file, never half of one. The
ledger is an fsynced append-only log, compacted the same atomic way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .base import Clock

log = logging.getLogger("llmwatch.notify")


def _atomic_write(path: Path, data: Any) -> None:
    _atomic_write_text(path, json.dumps(data, separators=(",", ":")))


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Public name for the notifier's other small state files.
atomic_write = _atomic_write


def _read(path: Path) -> Any:
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


class Ledger(Protocol):
    """Remembers which deliveries are done, so a restart does not page twice.

    ``record`` stores first and remembers after: when the store refuses (OSError: a
    full disk, an I/O error) it raises and nothing is remembered, so the same record
    can be retried (``record_until_stored``).
    """

    def seen(self, key: str) -> bool: ...

    def record(self, key: str, outcome: str) -> None: ...


class MemoryLedger:
    def __init__(self, capacity: int = 100_000) -> None:
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._capacity = capacity

    def seen(self, key: str) -> bool:
        return key in self._entries

    def record(self, key: str, outcome: str) -> None:
        self._entries[key] = outcome
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def outcome(self, key: str) -> str | None:
        return self._entries.get(key)

    def snapshot(self) -> dict[str, str]:
        return dict(self._entries)


# The two system calls a ledger append makes; module names so tests can inject errors.
_os_write = os.write
_os_fsync = os.fsync


class JsonFileLedger(MemoryLedger):
    """The ledger on disk as an append-only JSON-lines log, compacted now and then.

    Appending one line per delivery keeps a record O(1) however big the ledger is
    (rewriting the whole file each time blocked the event loop for 100 ms+ at 100k
    entries). A record is appended and fsynced before it is remembered; an append that
    fails is cut off the file again, so a retry never glues onto half a line. A torn
    last line from a crash is skipped on load; a file that is otherwise unreadable
    (not UTF-8, not JSON lines) is moved aside (see ``_load``). The oldest entries fall
    off past ``capacity`` at the next compaction.
    """

    def __init__(self, path: str | Path, capacity: int = 100_000) -> None:
        super().__init__(capacity)
        self._path = Path(path)
        self._lines = 0
        self._fd: int | None = None
        entries, clean = _load(self._path)
        for key, outcome in entries:
            super().record(key, outcome)
            self._lines += 1
        if not clean:
            # The old single-object format, a torn tail, or a file set aside: rewrite it
            # as clean lines. If the disk refuses now, appends will say so (and retry).
            try:
                self._compact()
            except OSError as exc:
                log.error("delivery ledger %s: could not rewrite it: %s", self._path, exc)

    def record(self, key: str, outcome: str) -> None:
        if self._lines > 2 * len(self._entries) + 1000:
            try:
                self._compact()
            except OSError as exc:  # compaction can wait; the append below decides
                log.warning("delivery ledger %s: compaction failed: %s", self._path, exc)
        self._append((json.dumps([key, outcome], separators=(",", ":")) + "\n").encode())
        super().record(key, outcome)
        self._lines += 1

    def _append(self, data: bytes) -> None:
        fd = self._open()
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[_os_write(fd, view) :]
            _os_fsync(fd)
        except OSError:
            # Truncating needs no space: the file is as it was. If even that fails, the
            # next _open cuts the torn tail instead.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            self.close()
            raise

    def _open(self) -> int:
        if self._fd is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                _cut_torn_tail(fd)
            except OSError:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd

    def _compact(self) -> None:
        self.close()
        lines = "".join(
            json.dumps([k, o], separators=(",", ":")) + "\n" for k, o in self._entries.items()
        )
        _atomic_write_text(self._path, lines)
        self._lines = len(self._entries)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _cut_torn_tail(fd: int) -> None:
    """Truncate the file after its last newline (a failed append that could not be
    undone), so the next line starts on a line of its own."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    end = size
    while end > 0:
        begin = max(0, end - 65536)
        newline = os.pread(fd, end - begin, begin).rfind(b"\n")
        if newline >= 0:
            os.ftruncate(fd, begin + newline + 1)
            return
        end = begin
    os.ftruncate(fd, 0)


def _load(path: Path) -> tuple[list[tuple[str, str]], bool]:
    """The entries, and whether the file is clean JSON lines (else it needs a rewrite).

    A corrupt file (not UTF-8, or a line that is not a JSON [key, outcome] pair other
    than a torn last one) must not stop the notifier: the readable entries are kept,
    the file is moved aside for a person to look at, with an ERROR. Deliveries whose
    entries were lost may be sent again; receivers deduplicate them by their group key.
    """
    try:
        return _parse(path.read_bytes()) if path.exists() else ([], True)
    except _Corrupt as exc:
        aside = _set_aside(path)
        log.error(
            "delivery ledger %s is corrupt (%s): moved aside to %s; kept its %d readable "
            "entries, receivers' dedup keys cover the rest",
            path,
            exc.problem,
            aside,
            len(exc.entries),
        )
        return exc.entries, False


class _Corrupt(Exception):
    def __init__(self, problem: str, entries: list[tuple[str, str]]) -> None:
        super().__init__(problem)
        self.problem = problem
        self.entries = entries


def _parse(data: bytes) -> tuple[list[tuple[str, str]], bool]:
    if data.startswith(b"{"):
        # The earlier format: one JSON object, key -> outcome.
        try:
            return [(str(k), str(v)) for k, v in json.loads(data).items()], False
        except (ValueError, AttributeError):
            pass
    lines = data.split(b"\n")
    # The last element is b"" after a final newline, else a line torn by a crash.
    torn = lines.pop()
    out: list[tuple[str, str]] = []
    problems: list[str] = []
    for number, line in enumerate(lines, 1):
        pair = _pair(line)
        if pair is None:
            problems.append(f"line {number} is not a JSON [key, outcome] pair")
        else:
            out.append(pair)
    if problems:
        raise _Corrupt(f"{problems[0]} ({len(problems)} such lines)", out)
    return out, not torn


def _pair(line: bytes) -> tuple[str, str] | None:
    try:
        key, outcome = json.loads(line.decode("utf-8"))
    except (ValueError, TypeError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(key, str) or not isinstance(outcome, str):
        return None
    return key, outcome


def _set_aside(path: Path) -> Path | str:
    for n in range(1, 1000):
        aside = path.with_name(f"{path.name}.corrupt-{n}")
        if not aside.exists():
            break
    try:
        os.replace(path, aside)
    except OSError as exc:
        return f"nowhere ({exc}); it will be overwritten"
    return aside


@dataclass
class LedgerStats:
    """Ledger writes that failed, and the receivers' lanes waiting on the ledger now."""

    write_failures: int = 0
    paused: set[str] = field(default_factory=set)
    on_failure: Callable[[str], None] | None = None  # called with the lane, e.g. a metric


async def record_until_stored(
    ledger: Ledger,
    key: str,
    outcome: str,
    *,
    clock: Clock,
    lane: str,
    stats: LedgerStats,
    max_delay_s: float = 30.0,
) -> None:
    """``ledger.record`` until the store takes it, waiting between tries.

    The delivery happened: dropping its record could page again after a restart, and
    going on would let the consumer commit past it. So the lane (whose worker awaits
    this) pauses, and retries with backoff while the disk is full or failing.
    """
    delay = 1.0
    while True:
        try:
            ledger.record(key, outcome)
        except OSError as exc:
            stats.write_failures += 1
            stats.paused.add(lane)
            if stats.on_failure is not None:
                stats.on_failure(lane)
            log.error(
                "%s: could not store delivery %s in the ledger (%s); lane paused, retry in %.0f s",
                lane,
                key,
                exc,
                delay,
            )
            await clock.sleep(delay)
            delay = min(max_delay_s, delay * 2)
            continue
        if lane in stats.paused:
            stats.paused.discard(lane)
            log.warning("%s: ledger writable again, lane resumed", lane)
        return


class MessageStore(Protocol):
    """Where Slack bot mode remembers (channel, ts) of the message it posted per fingerprint."""

    def get(self, fingerprint: str) -> tuple[str, str] | None: ...

    def put(self, fingerprint: str, channel: str, ts: str) -> None: ...

    def delete(self, fingerprint: str) -> None: ...


class MemoryMessageStore:
    def __init__(self) -> None:
        self._messages: dict[str, tuple[str, str]] = {}

    def get(self, fingerprint: str) -> tuple[str, str] | None:
        return self._messages.get(fingerprint)

    def put(self, fingerprint: str, channel: str, ts: str) -> None:
        self._messages[fingerprint] = (channel, ts)

    def delete(self, fingerprint: str) -> None:
        self._messages.pop(fingerprint, None)

    def snapshot(self) -> dict[str, list[str]]:
        return {fp: [ch, ts] for fp, (ch, ts) in self._messages.items()}


class JsonFileMessageStore(MemoryMessageStore):
    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self._path = Path(path)
        for fp, pair in (_read(self._path) or {}).items():
            super().put(str(fp), str(pair[0]), str(pair[1]))

    def put(self, fingerprint: str, channel: str, ts: str) -> None:
        super().put(fingerprint, channel, ts)
        _atomic_write(self._path, self.snapshot())

    def delete(self, fingerprint: str) -> None:
        super().delete(fingerprint)
        _atomic_write(self._path, self.snapshot())
