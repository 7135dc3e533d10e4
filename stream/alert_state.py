"""One fingerprint's live alert (pending or firing) and how it renders as a wire Alert."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from detectors.base import Finding
from schemas.models import Alert, AlertStatus, Bounds, Links, Severity
from stream.lifecycle_config import AlertRule

State = Literal["pending", "firing"]
Condition = Literal["hot", "band", "clear"]  # above fire / between / below resolve threshold


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class _Labels(dict[str, str]):
    """Labels for URL templates: an unknown field renders empty instead of raising."""

    def __missing__(self, key: str) -> str:
        return ""


def render_link(template: str | None, labels: Mapping[str, str], fp: str) -> str | None:
    if not template:
        return None
    try:
        return template.format_map(_Labels({**labels, "fingerprint": fp}))
    except (ValueError, IndexError, AttributeError):
        return template  # a malformed template is shown as written, never crashes alerting


@dataclass(slots=True)
class AlertState:
    fingerprint: str
    labels: dict[str, str]
    detector: str
    kind: str
    state: State
    active_since: float  # when the condition began: the alert's starts_at
    last_seen: float  # last finding of any kind
    last_active: float  # last finding that was not clear (keep_firing_for counts from here)
    condition: Condition
    score: float
    severity: str = "warning"
    observed: float | None = None
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    explanation: str = ""
    alert_id: str = ""
    flapping: bool = False
    samples: int = 1  # data findings not clear since the alert opened (the opener counts)
    last_sample: float = -math.inf  # event time of the last data finding
    cleared_at: float = math.nan  # when the condition last became clear
    interval: float = math.nan  # the series' sampling interval, as far as learned

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("observed", "expected", "lower", "upper", "last_sample", "cleared_at"):
            d[k] = _finite(d[k])  # JSON has no NaN/inf
        d["interval"] = _finite(self.interval)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AlertState:
        d = dict(d)
        # Snapshots write unknown times as null (and older ones lack them).
        for k, empty in (("last_sample", -math.inf), ("cleared_at", math.nan)):
            d[k] = empty if d.get(k) is None else float(d[k])
        d["interval"] = math.nan if d.get("interval") is None else float(d["interval"])
        if d.get("condition") == "clear" and math.isnan(d["cleared_at"]):
            # Snapshots before due-time timers counted keep_firing_for from the last
            # active finding; without this a cleared alert's timer would be NaN.
            d["cleared_at"] = float(d.get("last_active", d.get("last_seen", 0.0)))
        return cls(**d)

    def sample(self, now: float) -> bool:
        """A data finding at ``now``: learn the sampling interval from the gap since the
        last one (the shortest gap: a longer one is points that were not findings, not a
        slower rate). True when it is a new sampling instant."""
        gap = now - self.last_sample
        self.last_sample = max(self.last_sample, now)
        if not gap > 0.0:
            return False
        if gap < math.inf and (math.isnan(self.interval) or gap < self.interval):
            self.interval = gap
        return True

    def span(self, seconds: float, samples: int) -> float:
        """The longer of ``seconds`` and ``samples`` sampling intervals (just the seconds
        while the interval is unknown)."""
        if samples and not math.isnan(self.interval):
            return max(seconds, samples * self.interval)
        return seconds

    def update_from(self, f: Finding, score: float) -> None:
        """Take a finding's view of the series while pending, if it is the most anomalous
        yet (the earliest of equal scores); once firing, nothing of it changes: the
        alert's severity, score, observed, bounds and explanation are those of the most
        anomalous finding before it fired (one computation per episode), so its resolve
        renders and routes as its firing did. Not the last finding's: on a sparse series
        the alert fires a sample after the one that crossed (``for_samples``), and that
        next sample is often back inside its range ("within its expected range")."""
        if self.state == "firing" or score <= self.score:
            return
        self.score = score
        self.severity = f.severity
        self.observed, self.expected, self.lower, self.upper = (
            f.observed,
            f.expected,
            f.lower,
            f.upper,
        )
        self.explanation = f.explanation

    def to_alert(
        self, status: AlertStatus, now: float, rule: AlertRule, annotations: Mapping[str, str]
    ) -> Alert:
        try:
            severity = Severity(self.severity)
        except ValueError:
            severity = Severity.WARNING
        series = ", ".join(
            f"{k}={v}" for k, v in self.labels.items() if k not in ("alertname", "detector")
        )
        title = f"{self.kind}: {series}" if series else self.kind
        summary = self.explanation or (
            f"{self.kind} observed {self.observed} vs expected {self.expected}"
        )
        score = self.score if math.isfinite(self.score) else 0.0
        return Alert(
            alert_id=self.alert_id,
            fingerprint=self.fingerprint,
            status=status,
            severity=severity,
            detector=self.detector,
            title=title[:512],
            summary=summary[:4096],
            labels=dict(self.labels),
            observed=_finite(self.observed),
            expected=_finite(self.expected),
            bounds=Bounds(lower=_finite(self.lower), upper=_finite(self.upper)),
            score=min(1.0, max(0.0, score)),
            starts_at=_utc(self.active_since),
            ends_at=_utc(now) if status == AlertStatus.RESOLVED else None,
            explanation=self.explanation[:4096],
            links=Links(
                runbook=render_link(rule.runbook_url, self.labels, self.fingerprint),
                dashboard=render_link(rule.dashboard_url, self.labels, self.fingerprint),
            ),
            annotations=dict(annotations),
        )
