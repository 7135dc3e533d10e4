"""Which offsets may be committed: per partition, up to the first unfinished alert.

Alerts of one partition finish out of order (one receiver is slow, another fast),
but the committed offset only moves past a contiguous run of finished ones, so a
restart re-reads every alert some receiver had not finished.
"""

from __future__ import annotations

from collections import OrderedDict


class PartitionOffsets:
    def __init__(self) -> None:
        # offset -> (done, first seen at); insertion order is offset order.
        self._pending: OrderedDict[int, tuple[bool, float]] = OrderedDict()
        self._next: int | None = None  # the offset a commit should name

    def add(self, offset: int, now: float) -> None:
        self._pending[offset] = (False, now)
        if self._next is None:
            self._next = offset

    def done(self, offset: int) -> None:
        entry = self._pending.get(offset)
        if entry is not None:
            self._pending[offset] = (True, entry[1])
        # Pop the finished head run; what remains starts at the first unfinished offset.
        while self._pending:
            head, (finished, _) = next(iter(self._pending.items()))
            if not finished:
                self._next = head
                return
            self._pending.popitem(last=False)
            self._next = head + 1

    def commit_position(self) -> int | None:
        """Next offset to read after a restart (Kafka's commit convention), if any."""
        return self._next

    def in_flight(self) -> int:
        return sum(1 for finished, _ in self._pending.values() if not finished)

    def oldest(self) -> float | None:
        """When the oldest unfinished alert was consumed."""
        for finished, seen in self._pending.values():
            if not finished:
                return seen
        return None


class OffsetBook:
    """All partitions of the alerts topic this instance holds."""

    def __init__(self) -> None:
        self.parts: dict[int, PartitionOffsets] = {}
        self._committed: dict[int, int] = {}

    def add(self, partition: int, offset: int, now: float) -> None:
        self.parts.setdefault(partition, PartitionOffsets()).add(offset, now)

    def done(self, partition: int, offset: int) -> None:
        part = self.parts.get(partition)
        if part is not None:
            part.done(offset)

    def revoke(self, partition: int) -> None:
        self.parts.pop(partition, None)
        self._committed.pop(partition, None)

    def to_commit(self) -> dict[int, int]:
        """Positions that moved since the last ``committed`` call."""
        out = {}
        for p, part in self.parts.items():
            pos = part.commit_position()
            if pos is not None and pos != self._committed.get(p):
                out[p] = pos
        return out

    def committed(self, positions: dict[int, int]) -> None:
        self._committed.update(positions)

    def in_flight(self) -> int:
        return sum(p.in_flight() for p in self.parts.values())

    def oldest(self) -> float | None:
        seen = [t for p in self.parts.values() if (t := p.oldest()) is not None]
        return min(seen) if seen else None
