"""The notifier's dispatch pipeline, in Alertmanager's order, with an injected clock.

``ingest`` takes each alert event from the alerts topic: the route tree (stage 1)
picks its routes when its episode starts, and it joins one aggregation group per
route (stage 2). ``flush(now)`` looks at every group that is due and, per group,
drops what inhibition holds (3), then what a silence mutes (4), marks what is
acknowledged (5), and returns the notifications for the receivers (6). Nothing here
does I/O or reads a clock: the notifier service, replay and the demo drive the same
object with their own time, so tuning sees the pages a person would get.

Every ingested event carries an opaque token (the service's partition and offset);
a flush hands back the tokens it settled with the notification that settles them,
so an offset is committed only once its alert was told or deliberately held.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas.models import Alert, AlertStatus, Severity
from schemas.notification import GroupAlert, Notification, Reason

from .groups import Episode, Group, Groups
from .inhibit import Inhibition, Inhibitor, InhibitRule
from .labels import alert_labels
from .route import Route, Router
from .silences import SilenceStore

MAX_ALERTS = 1000  # per notification; the rest are counted in truncated_alerts


@dataclass(frozen=True)
class Flushed:
    """One group looked at: the notification (if any) and the inputs it settles."""

    group_key: str
    receiver: str
    note: Notification | None
    tokens: list[Hashable]
    held: dict[str, int] = field(default_factory=dict)  # alerts newly held, by why


@dataclass
class Stats:
    """What the pipeline did, for metrics, the demo and replay summaries."""

    notifications: Counter[str] = field(default_factory=Counter)  # by reason
    # "transient": fired and resolved between two looks with nothing in its group told.
    held: dict[str, set[str]] = field(
        default_factory=lambda: {
            "inhibited": set(),
            "silenced": set(),
            "acknowledged": set(),
            "transient": set(),
        }
    )
    # Alert ids that reached a receiver as firing at least once.
    notified: set[str] = field(default_factory=set)
    # Alert ids told only as resolved: they fired and resolved between two looks.
    told_resolved: set[str] = field(default_factory=set)
    # Notifications that tell someone something new fires: a first page, an update that
    # adds a firing alert, a reminder. An update whose only news is a resolve is no page.
    pages: int = 0

    def trim(self, live: set[str]) -> None:
        """Forget alert ids that are no longer firing (a long-running notifier's memory);
        the counts then describe the alerts firing now."""
        for ids in self.held.values():
            ids &= live
        self.notified &= live
        self.told_resolved &= live

    def held_only(self, reason: str) -> int:
        """Alert episodes held for ``reason`` and never notified as firing."""
        return len(self.held[reason] - self.notified)


class Pipeline:
    def __init__(
        self,
        route: Route,
        inhibit_rules: Iterable[InhibitRule] = (),
        silences: SilenceStore | None = None,
        external_url: str = "",
        quiet_on_resolve: Iterable[str] = (),
    ) -> None:
        self.router = Router(route)
        # Receivers told no resolves (send_resolved: false): their groups notify only
        # on firing news, as Alertmanager's dedup stage decides for them.
        self.quiet_on_resolve = frozenset(quiet_on_resolve)
        self.inhibitor = Inhibitor(inhibit_rules)
        self.silences = silences if silences is not None else SilenceStore()
        self.external_url = external_url
        self.groups = Groups()
        self.episodes: dict[str, Episode] = {}  # firing, by fingerprint
        self.ends: dict[str, float] = {}  # firing alerts' own ends_at (API clients' alerts)
        self.inhibited: dict[str, Inhibition] = {}  # as of the last flush
        self.firing: dict[str, dict[str, str]] = {}  # labels of the alerts firing then
        self.stats = Stats()

    # -- stage 1 and 2: route, then group ---------------------------------------------
    def ingest(self, alert: Alert, now: float, token: Hashable | None = None) -> int:
        """Take one alert event; returns how many groups hold its token (0: settled now)."""
        if alert.status == AlertStatus.FIRING:
            groups = self._firing(alert, now)
        else:
            groups = self._resolved(alert, now)
        if token is not None:
            for grp in groups:
                grp.tokens.append(token)
        return len(groups)

    def _episode(self, alert: Alert) -> Episode:
        labels = alert_labels(alert)
        return Episode(alert, labels, self.router.match(labels))

    def _firing(self, alert: Alert, now: float) -> list[Group]:
        ep = self.episodes.get(alert.fingerprint)
        if ep is None or ep.alert.alert_id != alert.alert_id:
            if ep is not None:  # a new episode; the old one's resolve never came
                self._forget(ep)
            ep = self.episodes[alert.fingerprint] = self._episode(alert)
        else:
            ep.alert = alert  # newer annotations; labels and routes stay as first fired
        if alert.ends_at is not None:  # a resend moves it (Alertmanager's endsAt)
            self.ends[alert.fingerprint] = alert.ends_at.timestamp()
        else:
            self.ends.pop(alert.fingerprint, None)
        groups = [self.groups.join(opts, ep, now) for opts in ep.routes]
        ep.group_keys = [g.key for g in groups]
        return groups

    def _forget(self, ep: Episode) -> None:
        for key in ep.group_keys:
            grp = self.groups.get(key)
            if grp is not None:
                grp.members.pop(ep.alert.fingerprint, None)
                grp.told.discard(ep.alert.alert_id)

    def _resolved(self, alert: Alert, now: float) -> list[Group]:
        self.ends.pop(alert.fingerprint, None)
        ep = self.episodes.pop(alert.fingerprint, None)
        if ep is None:
            # Resolving something this instance never saw fire (it fired before a
            # restart): tell the groups its labels route to, so no incident stays open.
            ep = self._episode(alert)
            keys = [opts.group_key(ep.labels) for opts in ep.routes]
            unknown = True
        else:
            keys, unknown = ep.group_keys, False
        out: list[Group] = []
        for opts, key in zip(ep.routes, keys, strict=True):
            grp = self.groups.get(key) if not unknown else None
            if grp is None and unknown:
                grp = self.groups.join(opts, ep, now)
                grp.told.add(alert.alert_id)
            if grp is None:
                continue
            grp.members.pop(alert.fingerprint, None)
            if alert.alert_id in grp.told:
                grp.resolved[alert.alert_id] = (alert, ep)
            elif alert.alert_id not in grp.held:  # held alerts were counted when held
                grp.unseen[alert.alert_id] = (alert, ep)
            out.append(grp)
        return out

    def forget(self, fingerprints: Iterable[str]) -> None:
        """Drop these alerts (their partition went to another replica, which owns them now),
        their pending resolves too: the uncommitted resolve is the new owner's to tell."""
        gone = set(fingerprints)
        for fp in gone:
            self.ends.pop(fp, None)
            ep = self.episodes.pop(fp, None)
            if ep is not None:
                self._forget(ep)
        for grp in list(self.groups):
            for pending in (grp.resolved, grp.unseen):
                for aid in [aid for aid, (a, _) in pending.items() if a.fingerprint in gone]:
                    del pending[aid]
                    grp.told.discard(aid)
            if grp.empty and not grp.told:
                self.groups.drop(grp.key)

    def pending(self) -> set[str]:
        """Fingerprints of resolves that groups still hold for their next look."""
        pairs = [pair for g in self.groups for pair in (*g.resolved.values(), *g.unseen.values())]
        return {alert.fingerprint for alert, _ in pairs}

    def restore(self, alerts: Iterable[Alert], now: float, grace_s: float = 0.0) -> None:
        """Firing alerts this notifier had told before a restart (its active-alerts file):
        their groups come back as told, so an ack or a resolve finds them and nothing is
        paged again; the next look is one group_interval on. One with an ``ends_at`` gets
        at least ``grace_s`` from now before it expires: its client could not post it
        again while this notifier was down, so the downtime is not held against it."""
        for alert in alerts:
            if alert.status != AlertStatus.FIRING:
                continue
            if alert.ends_at is not None and alert.ends_at.timestamp() < now + grace_s:
                alert = alert.model_copy(update={"ends_at": _utc(now + grace_s)})
            for grp in self._firing(alert, now):
                grp.told.add(alert.alert_id)
                grp.last_sent = now if grp.last_sent is None else grp.last_sent
                grp.next_flush = now + grp.opts.group_interval_s

    def expiring(self, now: float) -> bool:
        """Whether a firing alert's ``ends_at`` is at or before ``now``."""
        return min(self.ends.values(), default=now + 1.0) <= now

    def expire(self, now: float) -> list[Alert]:
        """Resolve the firing alerts whose own ``ends_at`` has passed, as Alertmanager
        does: an API client's alert that was not sent again (Prometheus stopped
        evaluating its rule, or died) ends when it said it would. Returns the resolves
        (annotated ``resolved_reason: expired``), already ingested."""
        out = []
        for fp in sorted(fp for fp, end in self.ends.items() if end <= now):
            alert = self.episodes[fp].alert
            notes = {**alert.annotations, "resolved_reason": "expired"}
            resolve = alert.model_copy(
                update={"status": AlertStatus.RESOLVED, "annotations": notes}
            )
            self.ingest(resolve, now)
            out.append(resolve)
        return out

    # -- stages 3 to 6, when groups are due --------------------------------------------
    def next_due(self) -> float | None:
        """When something is next due: a group's look or a firing alert's ``ends_at``."""
        due = [
            t
            for t in (self.groups.next_due(), min(self.ends.values(), default=None))
            if t is not None
        ]
        return min(due, default=None)

    def touch(self, fingerprint: str, now: float) -> None:
        """Look at this alert's groups at the next flush (an ack came in)."""
        ep = self.episodes.get(fingerprint)
        for key in ep.group_keys if ep is not None else ():
            grp = self.groups.get(key)
            if grp is not None and grp.last_sent is not None:
                grp.next_flush = min(grp.next_flush, now)

    def flush(self, now: float) -> list[Flushed]:
        due = self.groups.due(now)
        if not due:
            return []
        self.firing = {fp: ep.labels for fp, ep in self.episodes.items()}
        self.inhibited = self.inhibitor.evaluate(self.firing, self.firing)
        out = []
        for grp in due:
            held: Counter[str] = Counter()
            note = self._look(grp, now, held)
            out.append(Flushed(grp.key, grp.opts.receiver, note, list(grp.tokens), dict(held)))
            self.groups.flushed(grp, now)
        return out

    def _shown(self, grp: Group, now: float, held: Counter[str]) -> list[GroupAlert]:
        shown = []
        for fp in sorted(grp.members):
            ep = grp.members[fp]
            aid = ep.alert.alert_id
            why = self._held(fp, ep, now)
            if why is not None:
                self.stats.held[why].add(aid)
                if aid not in grp.held and aid not in grp.told:  # once per group, if never told
                    grp.held.add(aid)
                    held[why] += 1
                continue
            ack = self.silences.acked(fp, aid, now)
            if ack is not None:
                self.stats.held["acknowledged"].add(aid)
            shown.append(_item(ep.alert, ep, ack.by if ack is not None else ""))
        return shown

    def _held(self, fp: str, ep: Episode, now: float) -> str | None:
        """Stage 3 then stage 4: inhibited, silenced, or shown (None)."""
        if fp in self.inhibited:
            return "inhibited"
        return self._held_by_silence(ep, now)

    def _held_by_silence(self, ep: Episode, now: float) -> str | None:
        return "silenced" if self.silences.silenced_by(ep.labels, now) is not None else None

    def _unseen(
        self, grp: Group, now: float, held: Counter[str], told: bool
    ) -> list[tuple[Alert, Episode]]:
        """Alerts that fired and resolved since the last look (stages 3 and 4 as for the
        firing): told as resolved where the group has an incident open (``told``), else
        counted as transient. Alertmanager tells them the same way, and counts nothing."""
        if not grp.unseen:
            return []
        targets = {a.fingerprint: ep.labels for a, ep in grp.unseen.values()}
        inhibited = self.inhibitor.evaluate(self.firing, targets)
        out = []
        for aid, (alert, ep) in sorted(grp.unseen.items()):
            why = "inhibited" if alert.fingerprint in inhibited else self._held_by_silence(ep, now)
            why = why or (None if told else "transient")
            if why is None:
                out.append((alert, ep))
                continue
            self.stats.held[why].add(aid)
            held[why] += 1
        return out

    def _look(self, grp: Group, now: float, held: Counter[str]) -> Notification | None:
        shown = self._shown(grp, now, held)
        ids = {a.alert.alert_id for a in shown}
        quiet = grp.opts.receiver in self.quiet_on_resolve
        # Alerts that came and went between looks reach a quiet receiver as transient.
        brief = self._unseen(grp, now, held, told=not quiet and bool(grp.told or ids))
        done = sorted([*grp.resolved.values(), *brief], key=lambda pair: pair[0].fingerprint)
        resolved = [] if quiet else [_item(a, ep) for a, ep in done]
        all_acked = bool(shown) and all(a.acked_by for a in shown)
        reason: Reason | None = None
        news = bool(ids - grp.told)  # something fires that this group has not told
        if news:
            reason = "initial" if grp.last_sent is None else "update"
        elif resolved:
            reason = "update" if shown else "resolved"
        elif shown and all_acked and not grp.acked_told:
            reason = "acknowledged"
        elif shown and not all_acked and self._repeat_due(grp, now):
            reason = "repeat"
            grp.sequence += 1
        grp.told = (grp.told | (ids if reason else set())) - {a.alert_id for a, _ in done}
        if reason is None:
            return None
        self.stats.pages += news or reason == "repeat"
        grp.acked_told = all_acked
        grp.last_sent = now
        self.stats.notifications[reason] += 1
        self.stats.notified.update(ids)
        self.stats.told_resolved.update(a.alert_id for a, _ in brief)
        alerts = shown + resolved
        return Notification(
            receiver=grp.opts.receiver,
            group_key=grp.key,
            group_labels=dict(grp.labels),
            reason=reason,
            alerts=alerts[:MAX_ALERTS],
            truncated_alerts=max(0, len(alerts) - MAX_ALERTS),
            external_url=self.external_url,
            acknowledged=all_acked,
            sequence=grp.sequence,
        )

    @staticmethod
    def _repeat_due(grp: Group, now: float) -> bool:
        return grp.last_sent is not None and now - grp.last_sent >= grp.opts.repeat_interval_s


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _item(alert: Alert, ep: Episode, acked_by: str = "") -> GroupAlert:
    try:
        severity = Severity(ep.labels.get("severity", str(alert.severity)))
    except ValueError:
        severity = alert.severity
    return GroupAlert(alert=alert, labels=ep.labels, severity=severity, acked_by=acked_by)
