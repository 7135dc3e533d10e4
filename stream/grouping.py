"""Notification groups, as Alertmanager has them: group_wait, group_interval, repeat_interval.

The group only tracks membership and timers. At each check the lifecycle hands it
the alerts that may be shown right now (firing, neither silenced nor inhibited),
so a silence added after an alert fired still keeps it out of every later message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from schemas.models import Alert
from stream.lifecycle_config import GroupingConfig

Reason = Literal["initial", "update", "repeat"]


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for the notifiers: every shown alert of one group, and why now."""

    group_key: str
    group_labels: dict[str, str]
    reason: Reason
    alerts: list[Alert]
    ts: float

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "resolved"]


@dataclass(slots=True)
class _Group:
    key: str
    labels: dict[str, str]
    next_check: float
    members: set[str] = field(default_factory=set)  # firing fingerprints
    resolved: dict[str, Alert] = field(default_factory=dict)  # not yet told
    told: set[str] = field(default_factory=set)  # fingerprints last shown as firing
    last_sent: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "labels": self.labels,
            "next_check": self.next_check,
            "members": sorted(self.members),
            "resolved": {fp: a.model_dump(mode="json") for fp, a in self.resolved.items()},
            "told": sorted(self.told),
            "last_sent": self.last_sent,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> _Group:
        return cls(
            key=d["key"],
            labels=dict(d["labels"]),
            next_check=float(d["next_check"]),
            members=set(d["members"]),
            resolved={fp: Alert.model_validate(a) for fp, a in d["resolved"].items()},
            told=set(d["told"]),
            last_sent=d["last_sent"],
        )


class Grouper:
    def __init__(self, config: GroupingConfig) -> None:
        self.config = config
        self._groups: dict[str, _Group] = {}

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        if "..." in self.config.group_by:
            return dict(sorted(labels.items()))
        return {k: labels.get(k, "") for k in self.config.group_by}

    def _group(self, labels: Mapping[str, str], now: float) -> _Group:
        glabels = self.group_labels(labels)
        key = "{" + ",".join(f'{k}="{v}"' for k, v in glabels.items()) + "}"
        grp = self._groups.get(key)
        if grp is None:
            grp = _Group(key, glabels, now + self.config.group_wait_s)
            self._groups[key] = grp
        return grp

    def firing(self, fingerprint: str, labels: Mapping[str, str], now: float) -> None:
        grp = self._group(labels, now)
        grp.members.add(fingerprint)
        grp.resolved.pop(fingerprint, None)

    def resolved(self, alert: Alert, labels: Mapping[str, str], now: float) -> None:
        grp = self._group(labels, now)
        grp.members.discard(alert.fingerprint)
        # Receivers only hear a resolve for what they were told was firing, and never
        # for an alert that a silence or an inhibition covered when it resolved (the
        # resolved event is on the alerts topic either way).
        muted = "silenced" in alert.annotations or "inhibited_by" in alert.annotations
        if alert.fingerprint in grp.told and not muted:
            grp.resolved[alert.fingerprint] = alert
        grp.told.discard(alert.fingerprint)

    def flush(
        self, now: float, show: Callable[[str], tuple[Alert, bool] | None]
    ) -> list[Notification]:
        """Notifications due at ``now``. ``show(fp)`` gives (alert, acknowledged) for a
        firing alert that may be shown now, or None; it is only asked about due groups."""
        out: list[Notification] = []
        for key in sorted(k for k, g in self._groups.items() if now >= g.next_check):
            grp = self._groups[key]
            note = self._check(grp, now, show)
            if note is not None:
                out.append(note)
            grp.next_check = now + self.config.group_interval_s
            if not grp.members and not grp.resolved:
                del self._groups[key]
        return out

    def _check(
        self, grp: _Group, now: float, show: Callable[[str], tuple[Alert, bool] | None]
    ) -> Notification | None:
        firing: list[Alert] = []
        acked: set[str] = set()
        for fp in sorted(grp.members):
            shown = show(fp)
            if shown is not None:
                firing.append(shown[0])
                if shown[1]:
                    acked.add(fp)
        resolved = [grp.resolved[fp] for fp in sorted(grp.resolved)]
        grp.resolved.clear()
        fps = {a.fingerprint for a in firing}
        reason: Reason | None = None
        if grp.last_sent is None:
            reason = "initial" if firing else None
        elif (fps - grp.told) or resolved:
            reason = "update"
        elif (fps - acked) and now - grp.last_sent >= self.config.repeat_interval_s:
            reason = "repeat"
        if reason is None:
            return None
        grp.told = fps
        grp.last_sent = now
        return Notification(grp.key, dict(grp.labels), reason, firing + resolved, now)

    def to_dict(self) -> list[dict[str, Any]]:
        return [self._groups[k].to_dict() for k in sorted(self._groups)]

    def load(self, groups: Sequence[Mapping[str, Any]]) -> None:
        self._groups = {g["key"]: _Group.from_dict(g) for g in groups}
