"""One notification: what the notifier's pipeline hands a receiver when a group is flushed.

The pipeline (stream/alerting) routes, groups, inhibits, silences and acknowledges;
a receiver (connectors/notify) only renders and sends what it is given. This type is
the contract between them, so it lives here, where both may import it.

Each alert carries the labels its episode fired with (``severity`` included): a
resolve is shown, routed and grouped the way its firing was, even if a later
finding changed the severity.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .models import Alert, AlertStatus, Severity

Reason = Literal["initial", "update", "repeat", "acknowledged", "resolved"]
_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.ERROR: 1, Severity.WARNING: 2, Severity.INFO: 3}


class GroupAlert(BaseModel):
    """One alert in a notification, with the labels its episode fired with."""

    model_config = ConfigDict(frozen=True)

    alert: Alert
    labels: dict[str, str]
    severity: Severity
    acked_by: str = ""

    @property
    def firing(self) -> bool:
        return self.alert.status == AlertStatus.FIRING


class Notification(BaseModel):
    model_config = ConfigDict(frozen=True)

    receiver: str
    group_key: str
    group_labels: dict[str, str]
    reason: Reason
    alerts: list[GroupAlert]  # firing first, then resolved; each in fingerprint order
    truncated_alerts: int = Field(0, ge=0)
    external_url: str = ""
    # Every firing alert of the group is acknowledged (PagerDuty acknowledge, Slack shows it).
    acknowledged: bool = False
    # Counts repeats, so a reminder is not taken for a replay of the last message.
    sequence: int = 0

    @property
    def status(self) -> Literal["firing", "resolved"]:
        return "firing" if any(a.firing for a in self.alerts) else "resolved"

    @property
    def phase(self) -> str:
        """firing, acknowledged or resolved: what this notification tells a receiver."""
        if self.status == "resolved":
            return "resolved"
        return "acknowledged" if self.acknowledged else "firing"

    @property
    def firing(self) -> list[GroupAlert]:
        return [a for a in self.alerts if a.firing]

    @property
    def resolved(self) -> list[GroupAlert]:
        return [a for a in self.alerts if not a.firing]

    @property
    def severity(self) -> Severity:
        """The worst severity among the firing alerts (all alerts once resolved)."""
        pool = self.firing or self.alerts
        if not pool:
            return Severity.INFO
        return min((a.severity for a in pool), key=_SEVERITY_RANK.__getitem__)

    def common_labels(self) -> dict[str, str]:
        if not self.alerts:
            return {}
        first = self.alerts[0].labels
        return {
            k: v for k, v in sorted(first.items()) if all(a.labels.get(k) == v for a in self.alerts)
        }

    def common_annotations(self) -> dict[str, str]:
        if not self.alerts:
            return {}
        first = annotations_of(self.alerts[0].alert)
        rest = [annotations_of(a.alert) for a in self.alerts[1:]]
        return {k: v for k, v in sorted(first.items()) if all(r.get(k) == v for r in rest)}

    def digest(self) -> str:
        """Same content, same digest: the delivery ledger's key for this notification."""
        h = hashlib.sha256(f"{self.phase}|{self.sequence}".encode())
        for a in self.alerts:
            h.update(f"|{a.alert.alert_id}:{a.alert.status}".encode())
        return h.hexdigest()[:20]


def annotations_of(alert: Alert) -> dict[str, str]:
    """Alertmanager-style annotations: summary, description, runbook_url, and the rest."""
    notes = {"summary": alert.summary, "description": alert.explanation, **alert.annotations}
    runbook = alert.links.runbook or ""
    if runbook.lower().startswith(("http://", "https://")):  # never a javascript: link
        notes.setdefault("runbook_url", runbook)
    return {k: v for k, v in notes.items() if v}
