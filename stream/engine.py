"""The engine: every enabled detector plus the alert lifecycle, driven by event time.

The same object runs inside the Faust agents and in offline replay, so a replayed
incident produces exactly the alerts the live service would have.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from detectors.base import Detector, Finding, StateVersionError
from detectors.config import build_detectors
from schemas.columns import Columns
from schemas.models import Alert
from stream.config import LlmwatchConfig
from stream.lifecycle import Lifecycle

SNAPSHOT_FORMAT = 1
log = logging.getLogger("llmwatch.engine")


@dataclass(frozen=True, slots=True)
class EngineStep:
    scores: npt.NDArray[np.float64]  # per row: max over the detectors that consumed it
    findings: list[Finding]
    alerts: list[Alert]  # transition events to publish on the alerts topic
    per_detector_scores: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)


class Engine:
    def __init__(
        self, config: LlmwatchConfig | None = None, detectors: Sequence[Detector[Any]] | None = None
    ) -> None:
        """``detectors`` replaces the configured set (tests, tuning a single detector)."""
        self.config = config if config is not None else LlmwatchConfig()
        self.detectors: list[Detector[Any]] = (
            list(detectors) if detectors is not None else build_detectors(self.config.detectors)
        )
        names = [d.name for d in self.detectors]
        if len(set(names)) != len(names):
            raise ValueError(f"detector names must be unique, got {names}")
        self.lifecycle = Lifecycle(self.config.lifecycle)
        self.watermark = float("-inf")  # max event time seen so far
        # Per detector: the event time its own stream has reached (a batch of another
        # topic of the partition moves the watermark, not this).
        self._reached: dict[str, float] = {}
        # Set by restore: detectors that started fresh although the snapshot had them
        # (name -> why), e.g. a state version this release cannot migrate.
        self.fresh_detectors: dict[str, str] = {}

    def detectors_for(self, batch: Columns) -> list[Detector[Any]]:
        return [d for d in self.detectors if d.reads(type(batch))]

    def process(self, batch: Columns) -> EngineStep:
        n = len(batch)
        scores = np.zeros(n, dtype=np.float64)
        per: dict[str, npt.NDArray[np.float64]] = {}
        findings: list[Finding] = []
        alerts: list[Alert] = []
        hi = float("-inf")
        dets = self.detectors_for(batch)
        if n:
            ts = np.asarray(batch.ts, dtype=np.float64)  # type: ignore[attr-defined]
            finite = ts[np.isfinite(ts)]
            if finite.size:
                # Timers that fell due before this batch's first event run at their time.
                alerts = self._run_due(float(finite.min()), dets)
                hi = float(finite.max())
        if dets and all(d.row_findings for d in dets):
            return self._process_rows(batch, dets, hi, alerts)
        self._reach(dets, hi)
        for det in dets:
            out = det.update(batch)
            per[det.name] = s = self._scores(det, out.scores, n)
            np.maximum(scores, s, out=scores)
            findings.extend(out.findings)
        now = self._now(findings)
        if now is not None:
            alerts.extend(self.lifecycle.observe(findings, now))
        return EngineStep(scores, findings, alerts, per)

    def _process_rows(
        self, batch: Columns, dets: list[Detector[Any]], hi: float, alerts: list[Alert]
    ) -> EngineStep:
        """A batch for detectors whose findings are per row (``row_findings``): the
        lifecycle takes them at their own times, deadlines in between at theirs, so one
        call over a day of a sparse series gives what a call per row would."""
        n = len(batch)
        scores = np.zeros(n, dtype=np.float64)
        per: dict[str, npt.NDArray[np.float64]] = {}
        findings: list[Finding] = []
        for det in dets:
            out = det.update(batch)
            per[det.name] = s = self._scores(det, out.scores, n)
            np.maximum(scores, s, out=scores)
            findings.extend(out.findings)
        timed = sorted((f for f in findings if np.isfinite(f.ts)), key=lambda f: f.ts)
        i = 0
        while i < len(timed):
            t = timed[i].ts
            j = i
            while j < len(timed) and timed[j].ts == t:
                j += 1
            alerts.extend(self._run_due(t, dets))
            self._reach(dets, t)
            alerts.extend(self.lifecycle.observe(timed[i:j], self.watermark))
            i = j
        alerts.extend(self._run_due(hi, dets))
        self._reach(dets, hi)
        rest = [f for f in findings if not np.isfinite(f.ts)]
        now = self._now(rest)
        if now is not None:
            alerts.extend(self.lifecycle.observe(rest, now))
        return EngineStep(scores, findings, alerts, per)

    @staticmethod
    def _scores(det: Detector[Any], raw: Any, n: int) -> npt.NDArray[np.float64]:
        s = np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=0.0)
        if s.shape != (n,):
            raise ValueError(f"detector {det.name} returned {s.shape} scores for {n} rows")
        return s

    def advance(self, now: float, stream: type[Columns] | None = None) -> list[Alert]:
        """Let event time reach ``now`` with no data: absence checks and lifecycle timers.
        ``stream``: only the detectors of that batch type (its topic went quiet while
        the partition's others flow); every stream by default.

        Every deadline before ``now`` (a detector's ``next_deadline``, the lifecycle's
        next timer) is visited at its own time, then everything ticks at ``now``; so one
        call across an hour gives the alerts, with the timestamps, that a tick every
        second would."""
        dets = self.detectors if stream is None else self._of(stream)
        alerts = self._run_due(float(now), dets)
        alerts.extend(self._tick(dets, max(self.reached(stream), float(now))))
        return alerts

    def _of(self, stream: type[Columns]) -> list[Detector[Any]]:
        return [d for d in self.detectors if d.reads(stream)]

    def reached(self, stream: type[Columns] | None = None) -> float:
        """The event time ``stream`` (a batch type) has reached; the watermark for None."""
        if stream is None:
            return self.watermark
        marks = [self._reached.get(d.name, float("-inf")) for d in self._of(stream)]
        return max(marks, default=float("-inf"))

    def reach(self, now: float) -> list[Alert]:
        """Every stream has reached ``now`` (a source merged in event-time order, as
        replay reads): what falls due before it runs, for every detector, without the
        tick at ``now`` that ``advance`` adds."""
        return self._run_due(float(now), self.detectors)

    def next_deadline(self) -> float:
        """The earliest event time at which something happens without data."""
        due = self.lifecycle.next_deadline()
        for det in self.detectors:
            due = min(due, det.next_deadline(self.watermark))
        return due

    def _reach(self, dets: Sequence[Detector[Any]], t: float) -> None:
        self.watermark = max(self.watermark, t)
        for det in dets:
            self._reached[det.name] = max(self._reached.get(det.name, float("-inf")), t)

    def _run_due(self, until: float, dets: Sequence[Detector[Any]]) -> list[Alert]:
        """Tick ``dets`` (those whose stream has reached ``until``) at every deadline
        before ``until``, in order (one at most per instant: a deadline already past,
        since data moved their stream on, runs at the time that stream reached).

        Only the batch's own stream: a GPU or feedback batch read further than the
        inference topic of the partition must not judge inference series by time their
        own stream has not reached (every one would look silent). Nothing ticks at or
        after ``until`` either (a late batch). Those deadlines wait for the stream's
        next batch, or ``advance`` (the partition idle) or ``reach`` (replay)."""
        alerts: list[Alert] = []
        last = float("-inf")
        at = max((self._reached.get(d.name, float("-inf")) for d in dets), default=self.watermark)
        while True:
            due = self.lifecycle.next_deadline()
            for det in dets:
                due = min(due, det.next_deadline(at))
            t = max(due, at)
            if t >= until:
                return alerts
            if t <= last:  # the tick did not clear it; it runs again with the next event
                return alerts
            last = at = t
            alerts.extend(self._tick(dets, t))

    def _tick(self, dets: Sequence[Detector[Any]], now: float) -> list[Alert]:
        self._reach(dets, now)
        findings: list[Finding] = []
        for det in dets:
            findings.extend(det.tick(now))
        return self.lifecycle.observe(findings, self.watermark, sampled=False)

    def _now(self, findings: list[Finding]) -> float | None:
        if self.watermark != float("-inf"):
            return self.watermark
        # A batch without timestamps can still carry findings: use theirs.
        times = [f.ts for f in findings if np.isfinite(f.ts)]
        return max(times) if times else None

    def snapshot(self) -> bytes:
        payload = {
            "format": SNAPSHOT_FORMAT,
            "watermark": None if self.watermark == float("-inf") else self.watermark,
            "detectors": {d.name: base64.b64encode(d.snapshot()).decode() for d in self.detectors},
            "lifecycle": self.lifecycle.snapshot().decode(),
            "reached": {k: v for k, v in sorted(self._reached.items()) if np.isfinite(v)},
        }
        return orjson.dumps(payload)

    @classmethod
    def restore(
        cls,
        data: bytes,
        config: LlmwatchConfig | None = None,
        detectors: Sequence[Detector[Any]] | None = None,
    ) -> Engine:
        """Rebuild from ``snapshot()``. Detectors enabled now but absent from the snapshot
        start fresh; detectors in the snapshot that are no longer enabled are dropped.
        An older detector state is migrated where the detector registers a migration;
        a detector whose state cannot be read starts fresh alone (WARNING naming it,
        listed in ``fresh_detectors``), and the others keep what they learned."""
        payload = orjson.loads(data)
        if payload.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(
                f"engine snapshot format {payload.get('format')!r} is not {SNAPSHOT_FORMAT}"
            )
        eng = cls(config, detectors)
        saved: dict[str, str] = payload["detectors"]
        eng.detectors = [
            eng._restore_one(d, saved[d.name]) if d.name in saved else d for d in eng.detectors
        ]
        eng.lifecycle = Lifecycle.restore(payload["lifecycle"].encode(), eng.config.lifecycle)
        wm = payload["watermark"]
        eng.watermark = float("-inf") if wm is None else float(wm)
        # Older snapshots kept one clock: every stream had reached the watermark.
        old = {d.name: eng.watermark for d in eng.detectors} if wm is not None else {}
        eng._reached = {k: float(v) for k, v in payload.get("reached", old).items()}
        return eng

    def _restore_one(self, fresh: Detector[Any], blob: str) -> Detector[Any]:
        try:
            return type(fresh).restore(base64.b64decode(blob))
        except StateVersionError as exc:
            why = str(exc)
        except Exception as exc:  # e.g. a parameter this release no longer has
            why = f"detector {fresh.name!r}: snapshot unreadable ({type(exc).__name__}: {exc})"
        self.fresh_detectors[fresh.name] = why
        log.warning(
            "%s: starting detector %s fresh; it warms up again from the events that "
            "follow (docs/operating.md, Upgrades)",
            why[:500],
            fresh.name,
        )
        return fresh
