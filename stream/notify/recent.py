"""The alerts this notifier has seen: active (firing) by fingerprint, plus recent events.

Active alerts are kept in a JSON file too, with the ids of those a receiver was told
about, so after a restart an acknowledgement or a resolve still finds the group of an
alert whose offset is already committed (it will not be read again), and nothing
already told is told again. An alert not yet told is not restored: its offset was not
committed, so it is read again and goes through the pipeline as if for the first time.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

from connectors.notify.stores import atomic_write
from schemas.models import Alert, AlertStatus

log = logging.getLogger("llmwatch.notify")


class RecentAlerts:
    def __init__(self, path: Path | None, capacity: int = 5000, recent: int = 200) -> None:
        self._path = path
        self._capacity = capacity
        self.active: OrderedDict[str, Alert] = OrderedDict()
        self.outcomes: dict[str, dict[str, str]] = {}  # fingerprint -> receiver -> outcome
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self.told: set[str] = set()  # alert ids of active alerts some receiver was told
        self._dirty = False
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                # The older format was the list of alerts alone (told unknown: none).
                told = data.get("told", []) if isinstance(data, dict) else []
                for raw in data.get("alerts", []) if isinstance(data, dict) else data:
                    alert = Alert.model_validate(raw)
                    self.active[alert.fingerprint] = alert
                self.told = {str(t) for t in told}
            except (ValueError, TypeError) as exc:
                # A damaged cache only costs the ack lookups; never the notifier.
                log.error("ignored unreadable %s: %s", path, type(exc).__name__)

    def seen(self, alert: Alert, silenced_by: str | None) -> None:
        fp = alert.fingerprint
        if alert.status == AlertStatus.FIRING:
            self.active[fp] = alert
            self.active.move_to_end(fp)
            while len(self.active) > self._capacity:
                old, _ = self.active.popitem(last=False)
                self.outcomes.pop(old, None)
        else:
            self.active.pop(fp, None)
            self.outcomes.pop(fp, None)
        self.recent.append(
            {
                "alert": alert.model_dump(mode="json", exclude_none=True),
                "silenced_by": silenced_by,
            }
        )
        self._dirty = True

    def told_of(self) -> list[Alert]:
        """Active alerts some receiver was told about (what a restart restores)."""
        return [a for a in self.active.values() if a.alert_id in self.told]

    def mark_told(self, alert: Alert) -> None:
        if alert.status == AlertStatus.FIRING and alert.fingerprint in self.active:
            self.told.add(alert.alert_id)
            self._dirty = True

    def outcome(self, fingerprint: str, receiver: str, outcome: str) -> None:
        if fingerprint in self.active:
            self.outcomes.setdefault(fingerprint, {})[receiver] = outcome

    def get(self, fingerprint: str) -> Alert | None:
        return self.active.get(fingerprint)

    def flush(self) -> None:
        """Write the active alerts if they changed (the caller batches: at most every second)."""
        if self._dirty and self._path is not None:
            live = {a.alert_id for a in self.active.values()}
            self.told &= live
            data = {
                "alerts": [
                    a.model_dump(mode="json", exclude_none=True) for a in self.active.values()
                ],
                "told": sorted(self.told),
            }
            try:
                atomic_write(self._path, data)
            except OSError as exc:
                # A full disk must not stop the consume loop that calls this: the cache
                # stays dirty and is written on a later flush (the old file is intact).
                log.error("could not write %s (%s); will retry", self._path, exc)
                return
            self._dirty = False
