"""Small durable stores: the delivery ledger and Slack's message timestamps.

The message store is a JSON file replaced atomically (write a temp file, fsync,
rename), so a crash leaves either the old or the new file, never half of one. The
ledger is an fsynced append-only log, compacted the same atomic way.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol, TextIO


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
    """Remembers which deliveries are done, so a restart does not page twice."""

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


class JsonFileLedger(MemoryLedger):
    """The ledger on disk as an append-only JSON-lines log, compacted now and then.

    Appending one line per delivery keeps a record O(1) however big the ledger is
    (rewriting the whole file each time blocked the event loop for 100 ms+ at 100k
    entries). A torn last line from a crash is skipped on load; the oldest entries
    fall off past ``capacity`` at the next compaction.
    """

    def __init__(self, path: str | Path, capacity: int = 100_000) -> None:
        super().__init__(capacity)
        self._path = Path(path)
        self._lines = 0
        self._fh: TextIO | None = None
        entries, clean = _read_ledger(self._path)
        for key, outcome in entries:
            super().record(key, outcome)
            self._lines += 1
        if not clean:
            # The old single-object format, or a torn tail: rewrite it as clean lines.
            self._compact()

    def record(self, key: str, outcome: str) -> None:
        super().record(key, outcome)
        if self._lines > 2 * len(self._entries) + 1000:
            self._compact()
            return
        if self._fh is None or self._fh.closed:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self._path.open("a", encoding="utf-8")
        self._fh.write(json.dumps([key, outcome], separators=(",", ":")) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._lines += 1

    def _compact(self) -> None:
        self.close()
        lines = "".join(
            json.dumps([k, o], separators=(",", ":")) + "\n" for k, o in self._entries.items()
        )
        _atomic_write_text(self._path, lines)
        self._lines = len(self._entries)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _read_ledger(path: Path) -> tuple[list[tuple[str, str]], bool]:
    """The entries, and whether the file is clean JSON lines (else it needs a rewrite)."""
    if not path.exists():
        return [], True
    text = path.read_text(encoding="utf-8")
    if text.startswith("{"):
        # The earlier format: one JSON object, key -> outcome.
        try:
            return [(str(k), str(v)) for k, v in json.loads(text).items()], False
        except ValueError:
            pass
    out = []
    clean = not text or text.endswith("\n")
    for line in text.splitlines():
        try:
            key, outcome = json.loads(line)
        except (ValueError, TypeError):
            clean = False  # a line torn by a crash mid-write
            continue
        out.append((str(key), str(outcome)))
    return out, clean


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
