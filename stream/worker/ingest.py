"""Batch processing with no Kafka in it: raw bytes in, alerts and dead letters out.

The Faust agents only move bytes; everything that decides what happens to a batch
is here, so it can be tested with plain lists and a fake clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.columns import Columns
from schemas.decode import DecodePaths, Reject, decode_columns, to_dead_letter
from schemas.models import Alert, DeadLetter
from stream.event_slices import event_slices
from stream.metrics import WorkerMetrics, reason_class
from stream.worker.engines import EnginePool, Loader
from stream.worker.isolation import isolate
from stream.worker.recent_series import RecentSeries

Clock = Callable[[], float]
log = logging.getLogger("llmwatch.worker")


@dataclass(slots=True)
class Outcome:
    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    accepted: int = 0


@dataclass(frozen=True, slots=True)
class _TopicMetrics:
    """One topic's metric children, looked up once rather than on every batch."""

    events_in: Any
    events_accepted: Any
    batch_size: Any
    batch_seconds: Any
    detector_seconds: Any
    columnar: Any
    per_message: Any
    reference: Any


def _no_saved_state(partition: int) -> bytes | None:
    return None


class BatchProcessor:
    """Decodes a batch of one topic partition, scores it, and says what to publish.

    Event time drives the engines. When a partition goes quiet, ``advance_idle``
    moves its event time forward by the wall time that has passed since its last
    batch (a processing-time estimate of the watermark), so silence is noticed
    without traffic, for live streams and for replayed ones with old timestamps.
    """

    def __init__(
        self,
        pool: EnginePool,
        metrics: WorkerMetrics,
        *,
        load: Loader = _no_saved_state,
        clock: Clock = time.time,
        idle_after_s: float = 5.0,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.load = load
        self.clock = clock
        self.idle_after_s = float(idle_after_s)
        # partition -> stream (batch type; None: all, for an engine restored and quiet)
        # -> (wall time of its last batch, the event time that stream had reached then)
        self._last_seen: dict[int, dict[type[Columns] | None, tuple[float, float]]] = {}
        self._by_topic: dict[str, _TopicMetrics] = {}
        # Recent points per alert fingerprint, for the console's charts (/api/series).
        self.recent = RecentSeries()

    def process(
        self,
        *,
        kind: str,
        topic: str,
        partition: int,
        raws: Sequence[bytes],
        offsets: Sequence[int | None] | None = None,
    ) -> Outcome:
        began = time.perf_counter()
        wall = self.clock()
        out = Outcome()
        m = self._topic_metrics(topic, kind)
        m.events_in.inc(len(raws))
        m.batch_size.observe(len(raws))
        paths = DecodePaths()
        columns, rejects = decode_columns(raws, kind=kind, now=wall, paths=paths)
        m.columnar.inc(paths.columnar)
        if paths.per_message:
            m.per_message.inc(paths.per_message)
        if paths.reference:
            m.reference.inc(paths.reference)
        for rej in rejects:
            self._dead_letter(out, rej, "decode", topic, partition, offsets, wall)
        out.accepted = len(columns)
        if out.accepted:
            self.metrics.fleet.observe(columns)
            self.pool.get(partition, self.load, wall)
            t0 = time.perf_counter()
            # A backlog is judged in the event-time slices replay uses (stream/event_slices).
            ts = np.asarray(columns.ts, dtype=np.float64)  # type: ignore[attr-defined]
            for a, b in event_slices(ts):
                part = columns if (a, b) == (0, len(columns)) else columns.take(slice(a, b))
                self._step(out, part, a, rejects, raws, topic, partition, offsets, wall)
            m.detector_seconds.observe(time.perf_counter() - t0)
            m.events_accepted.inc(out.accepted)
            self.pool.touched(partition)
            streams = self._last_seen.setdefault(partition, {})
            streams.pop(None, None)
            kind_of = type(columns)
            streams[kind_of] = (wall, self.pool.engines[partition].reached(kind_of))
        self._count(out.alerts)
        m.batch_seconds.observe(time.perf_counter() - began)
        return out

    def _step(
        self,
        out: Outcome,
        part: Columns,
        first: int,
        rejects: Sequence[Reject],
        raws: Sequence[bytes],
        topic: str,
        partition: int,
        offsets: Sequence[int | None] | None,
        wall: float,
    ) -> None:
        """One engine step: accepted rows ``first``.. of the batch, as ``part``."""
        try:
            step = self.pool.engines[partition].process(part)
            out.alerts.extend(step.alerts)
            self.pool.journal.processed(partition, part)
        except Exception:
            log.warning(
                "%s/%d: the engine raised on %d events of a batch; retrying them once, "
                "then isolating the messages that fail",
                topic,
                partition,
                len(part),
                exc_info=True,
            )
            self._isolate(out, part, first, rejects, raws, topic, partition, offsets, wall)
        else:
            self.recent.record(step.findings)  # outside the try: never a reason to retry

    def _isolate(
        self,
        out: Outcome,
        columns: Columns,
        first: int,
        rejects: Sequence[Reject],
        raws: Sequence[bytes],
        topic: str,
        partition: int,
        offsets: Sequence[int | None] | None,
        wall: float,
    ) -> None:
        got = isolate(self.pool, partition, columns)
        outcome = "retried" if got.retried_ok else "bisected"
        self.metrics.engine_failures.labels(topic, outcome).inc()
        out.alerts.extend(got.alerts)
        if not got.poison:
            return
        # Accepted rows are the messages that were not rejected, in order.
        kept = np.setdiff1d(np.arange(len(raws)), [r.index for r in rejects])
        for p in got.poison:
            index = int(kept[first + p.row])
            rej = Reject(index, bytes(raws[index]), f"engine: {p.reason}", "$", p.exception)
            self._dead_letter(out, rej, "engine", topic, partition, offsets, wall)
        out.accepted -= len(got.poison)

    def _dead_letter(
        self,
        out: Outcome,
        rej: Reject,
        stage: str,
        topic: str,
        partition: int,
        offsets: Sequence[int | None] | None,
        wall: float,
    ) -> None:
        offset = offsets[rej.index] if offsets is not None else None
        out.dead_letters.append(
            to_dead_letter(rej, topic=topic, now=wall, partition=partition, offset=offset)
        )
        self.metrics.rejects.labels(topic, reason_class(rej.reason, rej.location)).inc()
        if rej.exception is not None:
            # A poison message: something raised on it alone, and it is set aside.
            self.metrics.poison.labels(topic, stage).inc()
            log.warning(
                "poison message %s/%d@%s (%d bytes) sent to the dead-letter topic: %s",
                topic,
                partition,
                offset,
                len(rej.raw),
                rej.reason[:300],
            )

    def _topic_metrics(self, topic: str, kind: str) -> _TopicMetrics:
        m = self._by_topic.get(topic)
        if m is None:
            w = self.metrics
            m = self._by_topic[topic] = _TopicMetrics(
                w.events_in.labels(topic),
                w.events_accepted.labels(topic),
                w.batch_size.labels(topic),
                w.batch_seconds.labels(topic),
                w.detector_seconds.labels(kind),
                w.decode_paths.labels(topic, "columnar"),
                w.decode_paths.labels(topic, "per_message"),
                w.decode_paths.labels(topic, "reference"),
            )
            # Loss counters start at 0 per topic: a rule's increase() over them has a
            # series to read before the first loss, and a dashboard shows 0, not "no data".
            for stage in ("decode", "engine"):
                w.poison.labels(topic, stage)
            for outcome in ("retried", "bisected"):
                w.engine_failures.labels(topic, outcome)
            w.offset_resets.labels(topic)
            w.offsets_skipped.labels(topic)
        return m

    def advance_idle(self) -> list[Alert]:
        """Let event time pass on partitions with no batch for ``idle_after_s`` of wall
        time, and on each stream (topic) of one whose other topics still flow, from the
        time that stream itself had reached: a topic gone quiet is noticed while the
        others flow, and a topic read further than another never drags it along."""
        wall = self.clock()
        alerts: list[Alert] = []
        for p, eng in sorted(self.pool.engines.items()):
            streams = self._last_seen.get(p)
            if not streams:
                # Restored and quiet since: start the idle clock now.
                if eng.watermark != float("-inf"):
                    self._last_seen[p] = {None: (wall, eng.watermark)}
                continue
            last_wall = max(w for w, _ in streams.values())
            if wall - last_wall >= self.idle_after_s:
                # All quiet: the whole partition, from its watermark then (one clock).
                last_mark = max(m for _, m in streams.values())
                todo: list[tuple[type[Columns] | None, tuple[float, float]]] = [
                    (None, (last_wall, last_mark))
                ]
            else:
                todo = list(streams.items())
            for stream, (last_wall, last_mark) in todo:
                idle = wall - last_wall
                if idle < self.idle_after_s or last_mark == float("-inf"):
                    continue
                try:
                    step = eng.advance(last_mark + idle, stream)
                except Exception:
                    # Not input: state that a detector's tick cannot handle. Keep the
                    # worker and the other partitions running, loudly; the partition's
                    # next batch (or a restart) tries again.
                    log.exception("partition %d: advancing event time failed", p)
                    self.metrics.engine_failures.labels("", "tick").inc()
                    self.pool.rebuild(p)
                    break
                self.pool.journal.advanced(p, last_mark + idle, stream)
                if step:
                    self.pool.touched(p)
                alerts.extend(step)
        self._count(alerts)
        return alerts

    def forget(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            self._last_seen.pop(p, None)
        self.pool.drop(partitions)

    def refresh_gauges(self) -> None:
        m = self.metrics
        m.engines.set(len(self.pool.engines))
        m.fleet.baselines(self.pool.engines.values())
        for name, n in self.pool.series_by_detector().items():
            m.active_series.labels(name).set(n)
        by_severity: dict[str, int] = {}
        for a in self.pool.active_alerts():
            by_severity[a.severity.value] = by_severity.get(a.severity.value, 0) + 1
        for sev in ("critical", "error", "warning", "info"):
            m.active_alerts.labels(sev).set(by_severity.get(sev, 0))
        mark = self.pool.watermark()
        if mark != float("-inf"):
            m.watermark.set(mark)

    def _count(self, alerts: Sequence[Alert]) -> None:
        for a in alerts:
            self.metrics.alerts.labels(a.status.value, a.severity.value).inc()
