"""Alert identity: the label set of a finding, and a stable hash of it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from detectors.base import Finding


def alert_labels(finding: Finding) -> dict[str, str]:
    """Labels of the alert a finding belongs to.

    Scope labels (the broken thing, e.g. host) come first so that a series label
    of the same name wins; ``alertname`` and ``detector`` always win.
    """
    labels = {str(k): str(v) for k, v in finding.scope.items()}
    labels.update({str(k): str(v) for k, v in finding.series.items()})
    labels["alertname"] = finding.kind
    labels["detector"] = finding.detector
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
