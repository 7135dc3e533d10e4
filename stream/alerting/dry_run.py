"""The dispatch stages run over a finished list of alert events, on their own event time.

Replay and the demo use this to count what a person would have received: the same
``Pipeline`` the notifier runs (route tree, groups, inhibition at flush, silences,
acks), driven by each event's time instead of a wall clock. Group timers are in
event time (30 s of group_wait is 30 s of fleet time), which is what production
sees when the notifier keeps up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.models import Alert, AlertStatus
from schemas.notification import Notification

from .inhibit import InhibitRule
from .pipeline import Pipeline, Stats
from .route import Route
from .silences import Silence, SilenceStore

_MAX_LOOKS = 1_000_000  # a safety bound on one catch-up loop (group_interval 0 loops)


def event_time(alert: Alert) -> float:
    if alert.status == AlertStatus.RESOLVED and alert.ends_at is not None:
        return alert.ends_at.timestamp()
    return alert.starts_at.timestamp()


@dataclass
class DryRun:
    notifications: list[Notification] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)

    def summary(self, incidents: int | None = None) -> dict[str, Any]:
        stats = self.stats
        firing = len(stats.notified | stats.told_resolved | set().union(*stats.held.values()))
        pages = stats.pages
        return {
            "notifications": len(self.notifications),
            "pages": pages,
            "by_reason": dict(sorted(self.stats.notifications.items())),
            "alerts_notified": len(self.stats.notified),
            "alerts_seen_firing": firing,
            "held_by_inhibition": self.stats.held_only("inhibited"),
            "held_by_silences": self.stats.held_only("silenced"),
            # Fired and resolved between two looks of their group: told as resolved beside
            # the group's open incident, or (nothing in it told) to nobody, as transient.
            "told_only_resolved": len(self.stats.told_resolved),
            "held_as_transient": self.stats.held_only("transient"),
            # Alerts told without a page of their own: they joined another's notification.
            "folded_by_grouping": max(0, len(self.stats.notified) - pages),
            "incidents": incidents,
            "pages_per_incident": pages / incidents if incidents else None,
        }


def _flush_until(p: Pipeline, t: float, out: list[Notification]) -> None:
    for _ in range(_MAX_LOOKS):
        due = p.next_due()
        if due is None or due > t:
            return
        p.expire(due)
        out.extend(f.note for f in p.flush(due) if f.note is not None)
        if p.next_due() == due:  # group_interval 0: one look per instant is enough
            return


def dispatch(
    alerts: Iterable[Alert],
    route: Route,
    inhibit_rules: Sequence[InhibitRule],
    until: float | None = None,
    silences: Iterable[Silence] = (),
    quiet_on_resolve: Iterable[str] = (),
) -> DryRun:
    """Feed ``alerts`` (any order) through the pipeline at their event times; flush what
    is due up to ``until`` (default: an hour after the last event). ``silences`` hold
    what they match while active in event time, as they would have then.
    ``quiet_on_resolve``: receivers with ``send_resolved: false``."""
    events = sorted(alerts, key=lambda a: (event_time(a), a.status != AlertStatus.RESOLVED))
    store = SilenceStore()
    for silence in silences:
        store.put(silence)
    p = Pipeline(route, inhibit_rules, store, quiet_on_resolve=quiet_on_resolve)
    out: list[Notification] = []
    for alert in events:
        t = event_time(alert)
        _flush_until(p, t, out)
        p.ingest(alert, t)
    if events:
        # An hour past the last event: every group_wait and group_interval has run out.
        _flush_until(p, event_time(events[-1]) + 3600.0 if until is None else until, out)
    return DryRun(out, p.stats)
