"""Warm-up: a detector that restored fresh re-learns from the source topics' history.

When a snapshot's state version of a detector has no migration (docs/operating.md,
Upgrades), ``Engine.restore`` starts that detector alone fresh. Rather than relearn
from live events only (a baseline detector would need a day or a week of them), the
worker reads the partition's retained history of the topics that detector consumes,
up to the offsets the snapshot covers, and feeds it through the fresh detectors only.
Their findings are discarded: history was judged (and paged) by the previous release,
and must not page again. The other detectors and the lifecycle already hold it.

Bounded by ``max_rows`` (the newest rows before the snapshot's offsets are read), so
a huge topic cannot stall a takeover; 0 disables it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.base import Detector
from schemas.columns import COLUMNS_BY_KIND, Columns
from schemas.decode import decode_columns
from stream.engine import Engine
from stream.event_slices import event_slices

log = logging.getLogger("llmwatch.worker")

# (kind, raw messages of one fetch)
RawBatch = tuple[str, Sequence[bytes]]
# (topic, partition, first offset not to read, most messages) -> raw message batches
HistoryReader = Callable[[str, int, int, int], Iterable[Sequence[bytes]]]


@dataclass
class WarmupResult:
    rows: dict[str, int] = field(default_factory=dict)  # detector -> rows it learned
    rejected: int = 0  # history rows that did not decode (dead-lettered when first read)
    capped: bool = False  # stopped at max_rows
    seconds: float = 0.0  # how long the partition waited for it

    def summary(self) -> dict[str, Any]:
        """What /healthz shows of it."""
        return {
            "rows": dict(self.rows),
            "undecodable": self.rejected,
            "capped": self.capped,
            "seconds": round(self.seconds, 2),
        }


def warm_up(
    detectors: Sequence[Detector[Any]],
    batches: Iterable[RawBatch],
    *,
    max_rows: int,
    now: float,
) -> WarmupResult:
    """Feed raw history through ``detectors`` only, in event-time slices, and tick them
    at their deadlines in between as the engine would; every finding is dropped.
    Stops after ``max_rows`` decoded rows (0: nothing is read)."""
    out = WarmupResult({d.name: 0 for d in detectors})
    reached: dict[str, float] = {d.name: float("-inf") for d in detectors}
    left = max(0, int(max_rows))
    out.capped = left == 0
    for kind, raws in [] if out.capped else batches:
        cols, rejects = decode_columns(raws, kind=kind, now=now)
        out.rejected += len(rejects)
        dets = [d for d in detectors if d.reads(type(cols))]
        if not dets or not len(cols):
            continue
        if len(cols) > left:
            cols = cols.take(slice(0, left))
        left -= len(cols)
        _learn(dets, cols, reached, out)
        if left <= 0:  # the cap, not the end of history: say so (and stop reading)
            out.capped = True
            break
    return out


def _learn(
    dets: Sequence[Detector[Any]], cols: Columns, reached: dict[str, float], out: WarmupResult
) -> None:
    ts = np.asarray(cols.ts, dtype=np.float64)  # type: ignore[attr-defined]
    for a, b in event_slices(ts):
        part = cols if (a, b) == (0, len(cols)) else cols.take(slice(a, b))
        span = ts[a:b][np.isfinite(ts[a:b])]
        hi = float(span.max()) if span.size else float("-inf")
        for det in dets:
            _tick_until(det, reached, float(span.min()) if span.size else hi)
            det.update(part)  # findings and scores dropped: history must not re-page
            reached[det.name] = max(reached[det.name], hi)
            out.rows[det.name] += b - a


def _tick_until(det: Detector[Any], reached: dict[str, float], until: float) -> None:
    """``det``'s timers that fall due before ``until``, in order (Engine._run_due's rule)."""
    at, last = reached[det.name], float("-inf")
    if at == float("-inf"):
        return
    while True:
        t = max(det.next_deadline(at), at)
        if t >= until or t <= last:
            return
        last = at = reached[det.name] = t
        det.tick(t)


def read_history(
    conf: Mapping[str, str], *, stall_s: float = 10.0, fetch: int = 5000
) -> HistoryReader:
    """A reader of one partition's retained history with a confluent-kafka consumer:
    assigned (no group membership, nothing committed), from the low watermark or the
    newest ``limit`` messages before ``end``, up to offset ``end`` (excluded)."""

    def read(topic: str, partition: int, end: int, limit: int) -> Iterator[list[bytes]]:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(
            {
                **conf,
                "group.id": "llmwatch-warmup",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            }
        )
        try:
            tp = TopicPartition(topic, partition)
            low, high = consumer.get_watermark_offsets(tp, timeout=stall_s)
            stop = min(end, high)
            pos = max(low, stop - max(0, limit))
            if pos >= stop:
                return
            consumer.assign([TopicPartition(topic, partition, pos)])
            quiet_since = time.monotonic()
            while pos < stop:
                got: list[bytes] = []
                for msg in consumer.consume(num_messages=min(fetch, stop - pos), timeout=0.5):
                    at = msg.offset()
                    if msg.error() is not None or at is None or at >= stop:
                        continue
                    got.append(msg.value() or b"")
                    pos = at + 1
                if got:
                    quiet_since = time.monotonic()
                    yield got
                elif time.monotonic() - quiet_since > stall_s:
                    log.warning(
                        "%s/%d: warm-up read nothing for %.0f s at offset %d of %d; "
                        "stopping it there",
                        topic,
                        partition,
                        stall_s,
                        pos,
                        stop,
                    )
                    return
        finally:
            consumer.close()

    return read


class HistoryWarmup:
    """The worker's hook (``EnginePool.warm``): warms a restored engine's fresh detectors
    from the retained history of the partition's source topics they consume."""

    def __init__(
        self,
        read: HistoryReader,
        topics: Mapping[str, str],  # source topic -> decoder kind
        covered: Callable[[int], dict[str, int]],  # partition -> topic -> last offset
        *,
        max_rows: int,
        counter: Any = None,  # Counter labelled by detector
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.read = read
        self.topics = dict(topics)
        self.covered = covered
        self.max_rows = int(max_rows)
        self.counter = counter
        self.clock = clock
        self.last: dict[int, WarmupResult] = {}  # partition -> its last warm-up (/healthz)

    def __call__(self, partition: int, engine: Engine) -> WarmupResult | None:
        fresh = [d for d in engine.detectors if d.name in engine.fresh_detectors]
        if not fresh:
            return None
        names = ", ".join(d.name for d in fresh)
        if self.max_rows <= 0:
            log.warning(
                "partition %d: detectors %s start fresh; warm-up from history disabled "
                "(warmup_max_rows=0): they learn from live events only",
                partition,
                names,
            )
            return None
        offsets = self.covered(partition)
        wanted = [
            (topic, kind)
            for topic, kind in self.topics.items()
            if topic in offsets and any(d.reads(COLUMNS_BY_KIND[kind]) for d in fresh)
        ]
        log.warning(
            "partition %d: warming up detectors %s from the retained history of %s up "
            "to the snapshot's offsets %s (at most %d rows); their findings are dropped",
            partition,
            names,
            [t for t, _ in wanted] or "no topic",
            {t: offsets[t] for t, _ in wanted},
            self.max_rows,
        )
        began = time.perf_counter()
        batches = (
            (kind, raws)
            for topic, kind in wanted
            for raws in self.read(topic, partition, offsets[topic] + 1, self.max_rows)
        )
        res = warm_up(fresh, batches, max_rows=self.max_rows, now=self.clock())
        self._report(partition, res, time.perf_counter() - began)
        return res

    def _report(self, partition: int, res: WarmupResult, seconds: float) -> None:
        res.seconds = seconds
        self.last[partition] = res
        for name, n in res.rows.items():
            if self.counter is not None:
                self.counter.labels(name).inc(n)
        level = logging.WARNING if res.capped or not any(res.rows.values()) else logging.INFO
        log.log(
            level,
            "partition %d: warm-up done in %.1f s: rows re-learned %s, %d undecodable%s",
            partition,
            seconds,
            res.rows,
            res.rejected,
            "; stopped at warmup_max_rows (older history not read)" if res.capped else "",
        )
