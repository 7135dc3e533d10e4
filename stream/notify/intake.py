"""What the notifier keeps between consuming an alert event and committing its offset.

``Settler``: an event's offset may be committed once every aggregation group that took
it has been flushed (its notification delivered or deliberately held), so each
event carries a count of the groups still holding it.

``CatchUp``: a notifier whose consumer group has no committed offset (a new group, or
offsets expired) must not page the whole history of the alerts topic. Up to the
partition's end as of assignment, events are folded by fingerprint instead; what is
still firing at the end enters the pipeline (the ledger drops what an earlier
notifier already sent), everything else is settled at once, unsent.
"""

from __future__ import annotations

from collections.abc import Callable

from schemas.models import Alert, AlertStatus

Token = tuple[int, int]  # (partition, offset)


class Settler:
    def __init__(self, done: Callable[[Token], None]) -> None:
        self._done = done
        self._held: dict[Token, int] = {}

    def hold(self, token: Token, groups: int) -> None:
        if groups <= 0:
            self._done(token)
        else:
            self._held[token] = self._held.get(token, 0) + groups

    def release(self, token: Token) -> None:
        if token not in self._held:  # its partition was revoked: not ours to commit
            return
        left = self._held[token] - 1
        if left > 0:
            self._held[token] = left
            return
        self._held.pop(token, None)
        self._done(token)

    def forget_partition(self, partition: int) -> None:
        """A revoked partition: its offsets are no longer ours to commit."""
        for token in [t for t in self._held if t[0] == partition]:
            del self._held[token]

    def __len__(self) -> int:
        return len(self._held)


class CatchUp:
    def __init__(self) -> None:
        self.until: dict[int, int] = {}  # partition -> offset where history ends
        self._open: dict[str, tuple[Alert, Token]] = {}
        self.skipped = 0  # events settled without notifying (resolved or superseded)

    def start(self, partition: int, end: int) -> None:
        if end > 0:
            self.until[partition] = end

    def active(self, partition: int, offset: int) -> bool:
        end = self.until.get(partition)
        return end is not None and offset < end

    def take(self, alert: Alert, token: Token) -> list[Token]:
        """Fold one historic event in; returns the tokens that are settled now."""
        settled: list[Token] = []
        prev = self._open.pop(alert.fingerprint, None)
        if prev is not None:
            settled.append(prev[1])
        if alert.status == AlertStatus.FIRING:
            self._open[alert.fingerprint] = (alert, token)
        else:
            settled.append(token)
        self.passed(*token)
        self.skipped += len(settled)
        return settled

    def passed(self, partition: int, offset: int) -> None:
        """An event of the history was read (also one that did not decode)."""
        if offset + 1 >= self.until.get(partition, 0):
            self.until.pop(partition, None)

    def __len__(self) -> int:
        """Events held by the fold (not yet in the pipeline)."""
        return len(self._open)

    def drop_partition(self, partition: int) -> None:
        self.until.pop(partition, None)
        for fp in [fp for fp, (_, t) in self._open.items() if t[0] == partition]:
            del self._open[fp]

    def finished(self) -> list[tuple[Alert, Token]]:
        """Once every partition reached its end: the alerts still open, oldest first."""
        if self.until or not self._open:
            return []
        out = sorted(self._open.values(), key=lambda item: item[1])
        self._open.clear()
        return out
