"""One Engine per source partition number, and when each one is due a checkpoint.

Publishers key every message by its series, so a series always lands on one
partition; an engine per partition therefore sees all of a series' events and
nothing is split between workers. Every source topic feeds the engine of the same
partition number (Faust assigns equal partition numbers of topics with equal
partition counts to the same worker), so inhibition between kinds works whenever
both series hash to that partition.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from schemas.columns import Columns
from schemas.models import Alert
from stream.config import LlmwatchConfig
from stream.engine import Engine

Loader = Callable[[int], bytes | None]
log = logging.getLogger("llmwatch.worker")


class Journal:
    """Per partition: the engine's last snapshot and every step it took since.

    Detectors cannot undo an update, so when a step fails half-way (some detectors
    updated, one raised) the engine is rebuilt from the snapshot and the steps that
    succeeded; every row is then in the state exactly once. The snapshot is the one a
    checkpoint writes anyway, and a step is a reference to a batch the engine already
    has, so the happy path pays one list append per batch.
    """

    def __init__(self) -> None:
        self.base: dict[int, bytes | None] = {}
        # A batch, or an advance: event time reached (and the stream, None for all).
        self.steps: dict[int, list[Columns | tuple[float, type[Columns] | None]]] = {}

    def start(self, partition: int, snapshot: bytes | None) -> None:
        self.base[partition] = snapshot
        self.steps[partition] = []

    def processed(self, partition: int, batch: Columns) -> None:
        self.steps.setdefault(partition, []).append(batch)

    def advanced(self, partition: int, now: float, stream: type[Columns] | None = None) -> None:
        self.steps.setdefault(partition, []).append((float(now), stream))

    def rebuild(self, partition: int, config: LlmwatchConfig) -> Engine:
        """The engine as it was after the last step that succeeded."""
        base = self.base.get(partition)
        eng = Engine(config) if base is None else Engine.restore(base, config)
        for step in self.steps.get(partition, []):
            if isinstance(step, tuple):
                eng.advance(*step)
            else:
                eng.process(step)
        return eng

    def drop(self, partition: int) -> None:
        self.base.pop(partition, None)
        self.steps.pop(partition, None)


class EnginePool:
    """Engines by partition, created fresh or restored from a saved snapshot on first use."""

    def __init__(
        self,
        config: LlmwatchConfig,
        *,
        every_batches: int = 50,
        every_s: float = 10.0,
    ) -> None:
        self.config = config
        # Engines already restored while their snapshot was checked (EngineStateTable's
        # ``check``), so a takeover restores each one once.
        self.checked: dict[int, Engine] = {}
        self.every_batches = max(1, int(every_batches))
        self.every_s = float(every_s)
        self.engines: dict[int, Engine] = {}
        self.restored: set[int] = set()
        # Partitions whose engine has been written to the state store since it started
        # here and flushed to the changelog by a commit since: a crash now restores them
        # rather than relearning (shown on /healthz as "saved").
        self.saved_once: set[int] = set()
        # Saved, not yet known to be on the broker: partition -> monotonic time of the
        # first save (the changelog send is buffered until the producer flushes).
        self._unflushed: dict[int, float] = {}
        self.restore_failed: set[int] = set()
        self._dirty_batches: dict[int, int] = {}
        self._saved_at: dict[int, float] = {}
        self.journal = Journal()
        # Re-learns a restored engine's fresh detectors from history (stream.worker.warmup).
        self.warm: Callable[[int, Engine], object] | None = None

    def get(self, partition: int, load: Loader, wall: float) -> Engine:
        eng = self.engines.get(partition)
        if eng is None:
            saved = load(partition)
            eng = None
            base = None
            if saved is not None:
                try:
                    eng = self.checked.pop(partition, None) or Engine.restore(saved, self.config)
                    base = saved
                    self.restored.add(partition)
                    if eng.fresh_detectors and self.warm is not None:
                        base = self._warm(partition, eng)
                except Exception:
                    # A snapshot this version cannot read (e.g. detector parameters
                    # changed in an upgrade): relearn rather than stop the partition.
                    log.exception("partition %d: saved engine state unreadable", partition)
                    self.restore_failed.add(partition)
            if eng is None:
                eng = Engine(self.config)
            self.journal.start(partition, base)
            self.engines[partition] = eng
            self._dirty_batches[partition] = 0
            self._saved_at[partition] = wall
        return eng

    def _warm(self, partition: int, eng: Engine) -> bytes:
        """Warm ``eng``'s fresh detectors; the journal's base is then the warmed state,
        so a rebuild after a failed step keeps what the warm-up learned."""
        assert self.warm is not None
        try:
            self.warm(partition, eng)
        except Exception:
            # History unreadable (broker down, topic gone): those detectors learn from
            # live events; what they learned before it failed is kept (each row once).
            log.exception("partition %d: warm-up from history failed", partition)
        return eng.snapshot()

    def check(self, partition: int, snapshot: bytes) -> None:
        """Restore ``snapshot`` (raising if this build cannot) and keep the engine for
        the partition's first batch."""
        self.checked[partition] = Engine.restore(snapshot, self.config)

    def touched(self, partition: int) -> None:
        self._dirty_batches[partition] = self._dirty_batches.get(partition, 0) + 1

    def due(self, wall: float) -> list[int]:
        """Partitions whose state changed and is N batches or T seconds past its last save."""
        out = []
        for p, n in self._dirty_batches.items():
            if n and (n >= self.every_batches or wall - self._saved_at[p] >= self.every_s):
                out.append(p)
        return out

    def settled(self, partitions: Iterable[int], wall: float) -> list[int]:
        """Of ``partitions``, those with an engine unchanged for a whole interval since
        its last save, and those with no engine (only rejects so far: nothing to save)."""
        return [
            p
            for p in partitions
            if p not in self.engines
            or (
                not self._dirty_batches.get(p, 0)
                and wall - self._saved_at.get(p, wall) >= self.every_s
            )
        ]

    def dirty(self) -> list[int]:
        return [p for p, n in self._dirty_batches.items() if n]

    def saved(self, partition: int, wall: float, snapshot: bytes | None = None) -> None:
        """The partition's engine was just saved (``snapshot``: the bytes written)."""
        self._dirty_batches[partition] = 0
        self._saved_at[partition] = wall
        eng = self.engines.get(partition)
        if eng is not None:
            if partition not in self.saved_once:
                self._unflushed.setdefault(partition, time.monotonic())
            self.journal.start(partition, snapshot if snapshot is not None else eng.snapshot())

    def flushed(self, started: float, confirmed: Callable[[int], bool] = lambda p: True) -> None:
        """A commit that began at monotonic ``started`` succeeded. Faust's flush before
        it gives up after 0.1 s without progress, so a save made before then counts as
        on the broker only where ``confirmed(partition)`` (no changelog send in flight)."""
        for p, at in list(self._unflushed.items()):
            if at <= started and confirmed(p):
                del self._unflushed[p]
                if p in self.engines:
                    self.saved_once.add(p)

    def rebuild(self, partition: int) -> Engine:
        """Replace the partition's engine by its state after the last step that succeeded."""
        eng = self.engines[partition] = self.journal.rebuild(partition, self.config)
        return eng

    def drop(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.engines.pop(p, None)
            self.checked.pop(p, None)
            self.journal.drop(p)
            self.restored.discard(p)
            self.saved_once.discard(p)
            self._unflushed.pop(p, None)
            self._dirty_batches.pop(p, None)
            self._saved_at.pop(p, None)

    def active_alerts(self) -> list[Alert]:
        """Open alerts of every engine, including those restored and checked that wait
        for their partition's first new event (a takeover shows what was open at once)."""
        out: list[Alert] = []
        for p in sorted(set(self.engines) | set(self.checked)):
            eng = self.engines.get(p) or self.checked[p]
            out.extend(eng.lifecycle.active_alerts())
        return out

    def series_by_detector(self) -> dict[str, int]:
        """Series with learned state, summed over engines (detectors keep them in registries)."""
        counts: dict[str, int] = {}
        for eng in self.engines.values():
            for det in eng.detectors:
                n = det.active_series()
                counts[det.name] = counts.get(det.name, 0) + n
        return counts

    def watermark(self) -> float:
        marks = [e.watermark for e in self.engines.values()]
        return max(marks, default=float("-inf"))
