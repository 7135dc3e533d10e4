"""Stage 2, aggregation groups: which alerts go out together, and when.

As in Alertmanager: a group is one route's alerts with equal ``group_by`` labels. A new
group waits ``group_wait`` before its first notification (so the rest of an incident,
and its cause, can arrive); after that it is looked at every ``group_interval`` and
notifies when its alerts changed, or re-notifies after ``repeat_interval`` while
unacknowledged alerts still fire. An alert keeps the group (and so the route) its
episode started in until it resolves. An alert that fires and resolves between two
looks is told at the next one as resolved beside the group's open incident, or,
with nothing in the group told, counted as transient and told to nobody.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field

from schemas.models import Alert

from .route import RouteOpts


@dataclass(slots=True)
class Episode:
    """One firing instance of a fingerprint, with what was fixed when it started."""

    alert: Alert  # the latest event of it
    labels: dict[str, str]  # as first fired: routing, grouping and display use these
    routes: list[RouteOpts]
    group_keys: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Group:
    key: str
    opts: RouteOpts
    labels: dict[str, str]
    next_flush: float
    members: dict[str, Episode] = field(default_factory=dict)  # firing, by fingerprint
    resolved: dict[str, tuple[Alert, Episode]] = field(default_factory=dict)  # by alert id
    # Alerts that fired and resolved since the last look, never told nor held (by id).
    unseen: dict[str, tuple[Alert, Episode]] = field(default_factory=dict)
    told: set[str] = field(default_factory=set)  # alert ids told as firing, not yet resolved
    held: set[str] = field(default_factory=set)  # alert ids held at some look (counted once)
    acked_told: bool = False  # the last message showed every firing alert acknowledged
    last_sent: float | None = None
    sequence: int = 0
    tokens: list[Hashable] = field(default_factory=list)  # inputs this flush will settle

    @property
    def empty(self) -> bool:
        return not self.members and not self.resolved and not self.unseen and not self.tokens


class Groups:
    def __init__(self) -> None:
        self._groups: dict[str, Group] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def __iter__(self) -> Iterator[Group]:
        return iter(self._groups.values())

    def join(self, opts: RouteOpts, ep: Episode, now: float) -> Group:
        key = opts.group_key(ep.labels)
        grp = self._groups.get(key)
        if grp is None:
            grp = Group(key, opts, opts.group_labels(ep.labels), now + opts.group_wait_s)
            self._groups[key] = grp
        grp.members[ep.alert.fingerprint] = ep
        return grp

    def get(self, key: str) -> Group | None:
        return self._groups.get(key)

    def due(self, now: float) -> list[Group]:
        return [self._groups[k] for k in sorted(self._groups) if self._groups[k].next_flush <= now]

    def flushed(self, grp: Group, now: float) -> None:
        """After a look at ``grp``: next look one group_interval on; forget it once empty."""
        grp.next_flush = now + grp.opts.group_interval_s
        grp.resolved.clear()
        grp.unseen.clear()
        grp.tokens = []
        grp.held &= {ep.alert.alert_id for ep in grp.members.values()}
        if not grp.members and not grp.told:
            self._groups.pop(grp.key, None)

    def drop(self, key: str) -> None:
        self._groups.pop(key, None)

    def next_due(self) -> float | None:
        return min((g.next_flush for g in self._groups.values()), default=None)
