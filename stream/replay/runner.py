"""Replay: stream recorded events through the live engine with an event-time clock.

Sources are merged by event time: rows are released only up to the smallest
"latest time seen" over the sources still being read, sorted, cut into slices of
``slice_s`` of event time (and at most ``max_rows`` rows), and processed kind by
kind. Sparse inputs get wider slices (up to ``max_slice_s``) so that a slice holds
about ``min_rows`` rows.

Time is event-driven: the engine visits every deadline (a silence beginning, a bin
closing, an alert timer) at its own time as events move the clock on, so gaps cost
nothing. ``tick_s`` instead ticks the engine every ``tick_s`` of event time through
gaps and after every slice, as a live worker's timer would; it gives the same alerts
(a test holds the two to it) and is kept as the reference.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.base import Detector, Finding
from schemas.columns import Columns
from schemas.models import Alert
from stream.config import LlmwatchConfig
from stream.engine import Engine
from stream.event_slices import slice_width

from .readers import BadRow, Chunk, CsvSource, Part, SeriesTable, Source

_MAX_FINDINGS = 200_000
# Columns whose distinct values make one "series" of each kind (for false alerts per series-day).
_SERIES_COLUMNS = {
    "inference": ("gateway", "model", "model_version"),
    "gpu": ("gpu_uuid",),
    "feedback": ("model", "model_version"),
    "metric": ("series",),
}


@dataclass
class Timeline:
    """Per engine batch: event time, kind and the p99 row score (for the overview plot)."""

    ts: list[float] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    p99_score: list[float] = field(default_factory=list)


@dataclass
class ReplayResult:
    alerts: list[Alert]
    findings: list[Finding]
    bad_rows: list[BadRow]
    rows: dict[str, int]  # accepted rows by kind
    series: dict[str, int]  # distinct series by kind
    first_ts: float | None
    last_ts: float | None
    elapsed_s: float
    tables: list[SeriesTable]
    timeline: Timeline
    uncovered_kinds: list[str]  # kinds that had rows but no detector consuming them

    @property
    def n_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def n_series(self) -> int:
        return sum(self.series.values())

    @property
    def span_s(self) -> float:
        if self.first_ts is None or self.last_ts is None:
            return 0.0
        return max(0.0, self.last_ts - self.first_ts)


@dataclass
class _Pending:
    parts: dict[str, list[Part]] = field(default_factory=dict)
    horizon: float = float("-inf")
    done: bool = False


def _ts(cols: Columns) -> npt.NDArray[np.float64]:
    ts: npt.NDArray[np.float64] = cols.ts  # type: ignore[attr-defined]
    return ts


def _concat(parts: list[Part]) -> Part:
    cols = type(parts[0].columns).concat([p.columns for p in parts])
    ids = None
    if parts[0].row_ids is not None:
        ids = np.concatenate([p.row_ids for p in parts if p.row_ids is not None])
    return Part(cols, ids)


def _p99(x: npt.NDArray[np.float64]) -> float:
    """np.percentile(x, 99) (linear), by partial sort: replay calls it once per batch."""
    k = 0.99 * (x.size - 1)
    lo = int(k)
    hi = min(lo + 1, x.size - 1)
    part = np.partition(x, (lo, hi)) if x.size > 2 else np.sort(x)
    return float(part[lo] + (part[hi] - part[lo]) * (k - lo))


def _take(part: Part, index: Any) -> Part:
    ids = None if part.row_ids is None else part.row_ids[index]
    return Part(part.columns.take(index), ids)


class Replayer:
    """One replay run: feed sources, collect alerts, scores and findings."""

    def __init__(
        self,
        config: LlmwatchConfig | None = None,
        *,
        slice_s: float = 5.0,
        max_rows: int = 16384,
        min_rows: int = 512,
        max_slice_s: float = 60.0,
        on_alert: Callable[[Alert], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        engine: Engine | None = None,
        tick_s: float | None = None,
    ) -> None:
        if tick_s is not None and not tick_s > 0:
            raise ValueError(f"tick_s must be > 0 (or None: event-driven), got {tick_s}")
        self.tick_s = tick_s
        self.engine = engine if engine is not None else Engine(config)
        self.slice_s = slice_s
        self.max_rows = max_rows
        self.min_rows = min_rows
        self.max_slice_s = max_slice_s
        self.on_alert = on_alert
        self.on_progress = on_progress
        self.alerts: list[Alert] = []
        self.findings: list[Finding] = []
        self.bad: list[BadRow] = []
        self.rows: dict[str, int] = {}
        self._series: dict[str, set[tuple[Any, ...]]] = {}
        self.timeline = Timeline()
        self._first: float | None = None
        self._last: float | None = None
        self._tables: dict[int, SeriesTable] = {}
        self._uncovered: set[str] = set()

    def run(self, sources: Sequence[Source]) -> ReplayResult:
        began = time.perf_counter()
        iters: list[Iterator[tuple[Chunk, int]]] = [s.chunks(self.bad) for s in sources]
        pending = [_Pending() for _ in sources]
        for i, s in enumerate(sources):
            if isinstance(s, CsvSource):
                self._tables[i] = s.table
        while True:
            live = [i for i, p in enumerate(pending) if not p.done]
            if not live:
                break
            # Read from the source that is furthest behind in event time.
            i = min(live, key=lambda j: pending[j].horizon)
            item = next(iters[i], None)
            if item is None:
                pending[i].done = True
                pending[i].horizon = float("inf")
            else:
                chunk, consumed = item
                self._add(pending[i], chunk, i)
                if self.on_progress is not None:
                    self.on_progress(consumed)
            cutoff = min(p.horizon for p in pending)
            self._release(pending, cutoff)
        if self._last is not None:
            self._emit(self.engine.advance(self._last))
        return ReplayResult(
            alerts=self.alerts,
            findings=self.findings,
            bad_rows=sorted(self.bad, key=lambda b: (b.source, b.line)),
            rows=dict(self.rows),
            series={k: len(v) for k, v in self._series.items()},
            first_ts=self._first,
            last_ts=self._last,
            elapsed_s=time.perf_counter() - began,
            tables=[self._tables[i] for i in sorted(self._tables)],
            timeline=self.timeline,
            uncovered_kinds=sorted(self._uncovered),
        )

    def _add(self, pending: _Pending, chunk: Chunk, source_index: int) -> None:
        for kind, part in chunk.items():
            if part.row_ids is not None:
                # Row ids are per source: tag them so merged metric rows map back.
                part = Part(part.columns, part.row_ids + (source_index << 40))
            pending.parts.setdefault(kind, []).append(part)
            ts = _ts(part.columns)
            if len(ts):
                pending.horizon = max(pending.horizon, float(np.nanmax(ts)))

    def _release(self, pending: list[_Pending], cutoff: float) -> None:
        ready: dict[str, list[Part]] = {}
        for p in pending:
            for kind, parts in list(p.parts.items()):
                keep: list[Part] = []
                for part in parts:
                    ts = _ts(part.columns)
                    if cutoff == float("inf") or bool((ts <= cutoff).all()):
                        ready.setdefault(kind, []).append(part)
                        continue
                    now = ts <= cutoff
                    if now.any():
                        ready.setdefault(kind, []).append(_take(part, now))
                    keep.append(_take(part, ~now))
                p.parts[kind] = keep
        if ready:
            self._process({k: _concat(v) for k, v in ready.items()})

    def _process(self, ready: dict[str, Part]) -> None:
        sorted_parts: dict[str, tuple[Part, npt.NDArray[np.float64]]] = {}
        lo, hi = float("inf"), float("-inf")
        for kind, part in ready.items():
            ts = _ts(part.columns)
            if not len(ts):
                continue
            if not bool((np.diff(ts) >= 0).all()):
                part = _take(part, np.argsort(ts, kind="stable"))
                ts = _ts(part.columns)
            sorted_parts[kind] = (part, ts)
            lo, hi = min(lo, float(ts[0])), max(hi, float(ts[-1]))
            self.rows[kind] = self.rows.get(kind, 0) + len(ts)
            self._count_series(kind, part.columns)
        if not sorted_parts:
            return
        if self._first is None:
            self._first = lo
        origin = self._first
        # Sparse data (a 1 Hz CSV series) in 5 s slices would be all per-call overhead:
        # widen the slice, on the same grid, until it holds min_rows (up to max_slice_s).
        n_rows = sum(len(ts) for _, ts in sorted_parts.values())
        width = slice_width(n_rows, hi - lo, self.slice_s, self.min_rows, self.max_slice_s)
        if all(self._whole(part.columns) for part, _ in sorted_parts.values()):
            width = max(hi - lo, 0.0) + self.slice_s  # one slice, cut by max_rows only
        k0 = int(np.floor((lo - origin) / width))
        k1 = int(np.floor((hi - origin) / width))
        cuts = {
            kind: np.searchsorted(ts, origin + width * np.arange(k0, k1 + 2), "left")
            for kind, (_, ts) in sorted_parts.items()
        }
        for step in range(k1 - k0 + 1):
            slice_last = float("-inf")
            for kind, (part, ts) in sorted_parts.items():
                a, b = int(cuts[kind][step]), int(cuts[kind][step + 1])
                if a == b:
                    continue
                if slice_last == float("-inf"):
                    self._gap_to(float(ts[a]))
                for s in range(a, b, self.max_rows):
                    e = min(b, s + self.max_rows)
                    self._step(kind, _take(part, slice(s, e)))
                slice_last = max(slice_last, float(ts[b - 1]))
            if slice_last != float("-inf"):
                if self.tick_s is not None:
                    self._emit(self.engine.advance(slice_last))
                self._last = slice_last if self._last is None else max(self._last, slice_last)

    def _gap_to(self, t: float) -> None:
        """With ``tick_s``: tick on its grid through a silence before ``t``. Event-driven,
        the engine visits what falls due in the gap when the next batch arrives."""
        if self.tick_s is None or self._last is None:
            return
        k = math.floor(self._last / self.tick_s) + 1
        while k * self.tick_s < t:
            self._emit(self.engine.advance(k * self.tick_s))
            k += 1

    def _whole(self, cols: Columns) -> bool:
        """Rows of this kind can go in batches of any span: every detector that reads
        them reports per row (``row_findings``) and keeps no timers of its own."""
        if self.tick_s is not None:
            return False
        dets = self.engine.detectors_for(cols)
        return bool(dets) and all(
            d.row_findings
            and type(d).next_deadline is Detector.next_deadline
            and type(d).tick is Detector.tick
            for d in dets
        )

    def _step(self, kind: str, part: Part) -> None:
        if not self.engine.detectors_for(part.columns):
            self._uncovered.add(kind)
        ts = _ts(part.columns)
        ts = ts[np.isfinite(ts)]
        if len(ts):
            # Sources merged in event-time order: every stream has reached this part's
            # start, so what falls due before it runs for every detector (the engine
            # alone only ticks the part's own stream).
            self._emit(self.engine.reach(float(ts.min())))
        out = self.engine.process(part.columns)
        self._emit(out.alerts)
        if len(self.findings) < _MAX_FINDINGS:
            self.findings.extend(out.findings)
        scores = np.clip(out.scores, 0.0, 1.0)
        if part.row_ids is not None:
            self._store_scores(part.row_ids, scores)
        if len(scores):
            self.timeline.ts.append(float(_ts(part.columns)[-1]))
            self.timeline.kind.append(kind)
            # The max over thousands of rows is always near 1; the p99 shows the trouble.
            self.timeline.p99_score.append(_p99(scores))

    def _store_scores(self, ids: npt.NDArray[np.int64], scores: npt.NDArray[np.float64]) -> None:
        src = ids >> 40
        local = ids & ((1 << 40) - 1)
        for s in np.unique(src).tolist():
            m = src == s
            self._tables[int(s)].scores[local[m]] = scores[m]

    def _count_series(self, kind: str, cols: Columns) -> None:
        names = _SERIES_COLUMNS.get(kind)
        if not names:
            return
        seen = self._series.setdefault(kind, set())
        arrays = [getattr(cols, n) for n in names]
        # Distinct values per column first: a batch holds few series and many rows.
        if len(arrays) == 1:
            seen.update((v,) for v in set(arrays[0].tolist()))
        else:
            seen.update(set(zip(*(a.tolist() for a in arrays), strict=True)))

    def _emit(self, alerts: list[Alert]) -> None:
        for a in alerts:
            self.alerts.append(a)
            if self.on_alert is not None:
                self.on_alert(a)


def replay(
    sources: Sequence[Source],
    config: LlmwatchConfig | None = None,
    **kwargs: Any,
) -> ReplayResult:
    """Run one replay with a fresh engine (see ``Replayer`` for the keyword options)."""
    return Replayer(config, **kwargs).run(sources)
