"""Alert identity: the one labels function and the one fingerprint, worker and notifier alike.

The worker names an alert by the labels of the finding that opened it
(``finding_labels``: scope, series, ``alertname``, ``detector``) and fingerprints them;
the notifier's matchers see those same labels plus ``severity`` (``alert_labels``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detectors.base import Finding
    from schemas.models import Alert


def finding_labels(finding: Finding) -> dict[str, str]:
    """Labels of the alert a finding belongs to.

    Scope labels (the broken thing, e.g. host) come first so that a series label
    of the same name wins; ``alertname`` and ``detector`` always win.
    """
    labels = {str(k): str(v) for k, v in finding.scope.items()}
    labels.update({str(k): str(v) for k, v in finding.series.items()})
    labels["alertname"] = finding.kind
    labels["detector"] = finding.detector
    return dict(sorted(labels.items()))


def alert_labels(alert: Alert) -> dict[str, str]:
    """What matchers (routes, silences, inhibit rules, group_by) see of a published alert:
    its labels, plus ``severity``, and ``alertname``/``detector`` where the labels lack them."""
    labels = {"alertname": alert.title, "detector": alert.detector}
    labels.update(alert.labels)
    labels["severity"] = str(alert.severity)
    return dict(sorted(labels.items()))


def fingerprint(labels: Mapping[str, str]) -> str:
    """16 hex chars of sha256 over the sorted labels; independent of dict order."""
    h = hashlib.sha256()
    for key in sorted(labels):
        # Separators that cannot appear in a sane label keep ("a","bc") != ("ab","c").
        h.update(key.encode())
        h.update(b"\x00")
        h.update(str(labels[key]).encode())
        h.update(b"\x01")
    return h.hexdigest()[:16]


# Every alert is published under this one key, so the alerts topic keeps them all on
# one partition and one notifier replica sees every alert: grouping (any group_by) and
# inhibition (a GPU cause holds error-rate symptoms of another alert name) need the
# whole picture, as each Alertmanager replica receives every alert. Further replicas in
# the consumer group stand by and take the partition over when its owner dies.
ALERTS_TOPIC_KEY = b"llmwatch-alerts"


def topic_key(alert: Alert) -> bytes:
    """The alerts topic's key for ``alert`` (the same for every alert; see above)."""
    return ALERTS_TOPIC_KEY
