"""Small durable stores: the delivery ledger and Slack's message timestamps.

Both are JSON files replaced atomically (write a temp file, fsync, rename), so a
crash leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol


def _atomic_write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    """The ledger, kept in a JSON file; the oldest entries fall off past ``capacity``."""

    def __init__(self, path: str | Path, capacity: int = 100_000) -> None:
        super().__init__(capacity)
        self._path = Path(path)
        stored = _read(self._path) or {}
        for key, outcome in stored.items():
            super().record(str(key), str(outcome))

    def record(self, key: str, outcome: str) -> None:
        super().record(key, outcome)
        _atomic_write(self._path, self.snapshot())


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
