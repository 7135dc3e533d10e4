"""What the worker can show about an alert beyond its events: its recent points and
the alerts still pending.

``RecentSeries`` keeps the last few findings of each alert fingerprint (the same
fingerprint the lifecycle gives the alert) in a bounded ring, the series held in LRU
order and capped, so the console can draw the series around an alert. It is fed the
findings of every engine step (stream/worker/ingest.py) and never grows past
``max_series * points`` points. Pending alerts never leave the worker as events (only
transitions do), so ``pending_alerts`` reads them from the engines' lifecycles.

The worker serves both as JSON (``/api/pending``, ``/api/series?fingerprint=``); the
notifier proxies them to its console (``LLMWATCH_WORKER_URL``).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from detectors.base import Finding
from stream.alerting.labels import finding_labels, fingerprint

POINTS = 120  # findings kept per fingerprint
MAX_SERIES = 5_000  # fingerprints kept; the least recently fed one goes first
_ID_CACHE = 100_000

Point = tuple[float, float | None, float | None, float | None, float | None]


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


class RecentSeries:
    """A bounded ring of (ts, observed, expected, lower, upper) per alert fingerprint."""

    def __init__(self, points: int = POINTS, max_series: int = MAX_SERIES) -> None:
        if points < 1 or max_series < 1:
            raise ValueError("points and max_series must be at least 1")
        self.points = points
        self.max_series = max_series
        self._rings: OrderedDict[str, deque[Point]] = OrderedDict()
        # Findings repeat the same few thousand label sets: hash each once.
        self._ids: dict[tuple[Any, ...], str] = {}

    def __len__(self) -> int:
        return len(self._rings)

    def record(self, findings: Iterable[Finding]) -> None:
        for f in findings:
            if not math.isfinite(f.ts):
                continue  # no place on a time axis
            fp = self._fingerprint(f)
            ring = self._rings.get(fp)
            if ring is None:
                if len(self._rings) >= self.max_series:
                    self._rings.popitem(last=False)
                ring = self._rings[fp] = deque(maxlen=self.points)
            else:
                self._rings.move_to_end(fp)
            ring.append(
                (float(f.ts), _num(f.observed), _num(f.expected), _num(f.lower), _num(f.upper))
            )

    def get(self, fp: str) -> list[Point]:
        """The points of ``fp`` in time order (findings can arrive out of order)."""
        ring = self._rings.get(fp)
        return sorted(ring, key=lambda p: p[0]) if ring is not None else []

    def _fingerprint(self, f: Finding) -> str:
        key = (f.detector, f.kind, tuple(f.series.items()), tuple(f.scope.items()))
        fp = self._ids.get(key)
        if fp is None:
            if len(self._ids) >= _ID_CACHE:
                self._ids.clear()
            fp = self._ids[key] = fingerprint(finding_labels(f))
        return fp


def series_body(recent: RecentSeries, fp: str) -> tuple[int, dict[str, Any]]:
    """``/api/series``: (HTTP status, JSON body) for fingerprint ``fp``."""
    if not fp:
        return 400, {"error": "fingerprint: required, e.g. /api/series?fingerprint=<16 hex>"}
    points = recent.get(fp)
    if not points:
        return 404, {"error": f"fingerprint: no recent points for {fp!r} in this worker"}
    keys = ("ts", "observed", "expected", "lower", "upper")
    return 200, {"fingerprint": fp, "points": [dict(zip(keys, p, strict=True)) for p in points]}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def pending_alerts(lifecycles: Mapping[int, Any]) -> list[dict[str, Any]]:
    """``/api/pending``: every pending alert of the given lifecycles (partition ->
    ``Lifecycle``), as JSON-ready dicts, oldest first."""
    out = []
    for partition, lc in sorted(lifecycles.items()):
        for st in lc.pending_states():
            out.append(
                {
                    "fingerprint": st.fingerprint,
                    "labels": dict(st.labels),
                    "detector": st.detector,
                    "kind": st.kind,
                    "state": "pending",
                    "since": _iso(st.active_since),
                    "severity": st.severity,
                    "score": _num(st.score),
                    "observed": _num(st.observed),
                    "expected": _num(st.expected),
                    "bounds": {"lower": _num(st.lower), "upper": _num(st.upper)},
                    "explanation": st.explanation,
                    "partition": partition,
                }
            )
    out.sort(key=lambda a: (a["since"], a["fingerprint"]))
    return out
