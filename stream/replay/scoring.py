"""Scoring a replay against labelled incidents.

Matching rule: a firing alert matches an incident when

* the labels they share, among ``MATCH_LABELS``, have equal values, and they share
  at least one (an incident with an empty target matches on time alone), and
* the alert starts within ``[incident start, incident end + grace]``.

Then, counting each alert once (by ``alert_id``, firing events only):

* precision = matched firing alerts / all firing alerts;
* recall = incidents with at least one matched alert / incidents;
* F1 = harmonic mean of the two;
* delay = first matched alert's ``starts_at`` - incident start (event time);
* false alerts per series-day = unmatched firing alerts / (series x days replayed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from schemas.models import Alert, AlertStatus
from schemas.timestamps import parse_ts

MATCH_LABELS = ("gateway", "model", "model_version", "host", "gpu_uuid", "series")
DEFAULT_GRACE_S = 300.0


@dataclass(frozen=True, slots=True)
class Incident:
    incident_id: str
    kind: str
    target: dict[str, str]
    start: float  # epoch seconds
    end: float


def _epoch(value: Any) -> float:
    parsed = parse_ts(value)
    if not isinstance(parsed, datetime):
        raise ValueError(f"not a timestamp: {value!r}")
    if parsed.tzinfo is None:  # naive means UTC, as on the wire
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_label(obj: Any, index: int = 0) -> Incident:
    if not isinstance(obj, dict):
        raise ValueError("a label must be a JSON object")
    try:
        start, end = _epoch(obj["start"]), _epoch(obj["end"])
    except KeyError as exc:
        raise ValueError(f"missing {exc.args[0]!r}") from None
    if end < start:
        raise ValueError(f"end ({obj['end']}) is before start ({obj['start']})")
    target = obj.get("target") or {}
    if not isinstance(target, dict):
        raise ValueError("target must be an object of label: value")
    return Incident(
        incident_id=str(obj.get("incident_id") or f"incident-{index + 1}"),
        kind=str(obj.get("kind") or "unknown"),
        target={str(k): str(v) for k, v in target.items()},
        start=start,
        end=end,
    )


def load_labels(path: Path) -> list[Incident]:
    """labels.jsonl: one incident a line; a bad line is an error naming the line."""
    out: list[Incident] = []
    for lineno, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(parse_label(orjson.loads(line), len(out)))
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise ValueError(f"{path}:{lineno}: bad label: {exc}") from None
    return out


def labels_match(alert_labels: dict[str, str], target: dict[str, str]) -> bool:
    if not target:
        return True
    shared = [k for k in MATCH_LABELS if k in alert_labels and k in target]
    return bool(shared) and all(alert_labels[k] == target[k] for k in shared)


def firing_alerts(alerts: Iterable[Alert]) -> list[Alert]:
    """The first firing event of each alert (alerts.jsonl also holds resolutions)."""
    seen: dict[str, Alert] = {}
    for a in alerts:
        if a.status is AlertStatus.FIRING and a.alert_id not in seen:
            seen[a.alert_id] = a
    return list(seen.values())


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values), q)) if values else None


def _delays(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50": _pct(values, 50),
        "p90": _pct(values, 90),
        "max": max(values) if values else None,
        "count": float(len(values)),
    }


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


@dataclass(frozen=True, slots=True)
class Match:
    alert: Alert
    incidents: list[str]  # incident ids this alert matched


def match(
    alerts: Sequence[Alert], incidents: Sequence[Incident], grace_s: float = DEFAULT_GRACE_S
) -> list[Match]:
    out = []
    for a in firing_alerts(alerts):
        t = a.starts_at.timestamp()
        hits = [
            inc.incident_id
            for inc in incidents
            if inc.start <= t <= inc.end + grace_s and labels_match(a.labels, inc.target)
        ]
        out.append(Match(a, hits))
    return out


def summarize(
    alerts: Sequence[Alert],
    incidents: Sequence[Incident],
    *,
    n_series: int,
    span_s: float,
    grace_s: float = DEFAULT_GRACE_S,
) -> dict[str, Any]:
    """The scored summary (summary.json): overall, per incident kind, per detector."""
    matches = match(alerts, incidents, grace_s)
    n_firing = len(matches)
    n_matched = sum(1 for m in matches if m.incidents)
    first: dict[str, float] = {}
    detected_by: dict[str, set[str]] = {}
    for m in matches:
        t = m.alert.starts_at.timestamp()
        for iid in m.incidents:
            first[iid] = min(first.get(iid, math.inf), t)
            detected_by.setdefault(iid, set()).add(m.alert.detector)
    delays = {
        inc.incident_id: first[inc.incident_id] - inc.start
        for inc in incidents
        if inc.incident_id in first
    }
    precision = n_matched / n_firing if n_firing else None
    recall = len(delays) / len(incidents) if incidents else None
    series_days = n_series * span_s / 86400.0
    false_alerts = n_firing - n_matched
    kinds: dict[str, Any] = {}
    for kind in sorted({inc.kind for inc in incidents}):
        group = [inc for inc in incidents if inc.kind == kind]
        hit = [delays[i.incident_id] for i in group if i.incident_id in delays]
        ids = {i.incident_id for i in group}
        kinds[kind] = {
            "incidents": len(group),
            "detected": len(hit),
            "recall": len(hit) / len(group),
            "matched_alerts": sum(1 for m in matches if ids & set(m.incidents)),
            "delay_s": _delays(hit),
        }
    detectors: dict[str, Any] = {}
    for det in sorted({m.alert.detector for m in matches}):
        mine = [m for m in matches if m.alert.detector == det]
        ok = sum(1 for m in mine if m.incidents)
        detectors[det] = {"firing": len(mine), "matched": ok, "precision": ok / len(mine)}
    return {
        "matching": {
            "labels": list(MATCH_LABELS),
            "grace_s": grace_s,
            "rule": "shared labels equal (>= 1 shared) and alert starts in [start, end + grace]",
        },
        "incidents": len(incidents),
        "detected": len(delays),
        "firing_alerts": n_firing,
        "matched_alerts": n_matched,
        "false_alerts": false_alerts,
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "series": n_series,
        "span_s": span_s,
        "false_alerts_per_series_day": false_alerts / series_days if series_days > 0 else None,
        "delay_s": _delays(list(delays.values())),
        "per_kind": kinds,
        "per_detector": detectors,
        "incident_results": [
            {
                "incident_id": inc.incident_id,
                "kind": inc.kind,
                "detected": inc.incident_id in delays,
                "delay_s": delays.get(inc.incident_id),
                "detectors": sorted(detected_by.get(inc.incident_id, ())),
            }
            for inc in incidents
        ],
    }
