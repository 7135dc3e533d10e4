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
from collections.abc import Callable, Iterable

from schemas.models import Alert
from stream.config import LlmwatchConfig
from stream.engine import Engine

Loader = Callable[[int], bytes | None]
log = logging.getLogger("llmwatch.worker")


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
        self.every_batches = max(1, int(every_batches))
        self.every_s = float(every_s)
        self.engines: dict[int, Engine] = {}
        self.restored: set[int] = set()
        self.restore_failed: set[int] = set()
        self._dirty_batches: dict[int, int] = {}
        self._saved_at: dict[int, float] = {}

    def get(self, partition: int, load: Loader, wall: float) -> Engine:
        eng = self.engines.get(partition)
        if eng is None:
            saved = load(partition)
            eng = None
            if saved is not None:
                try:
                    eng = Engine.restore(saved, self.config)
                    self.restored.add(partition)
                except Exception:
                    # A snapshot this version cannot read (e.g. detector parameters
                    # changed in an upgrade): relearn rather than stop the partition.
                    log.exception("partition %d: saved engine state unreadable", partition)
                    self.restore_failed.add(partition)
            if eng is None:
                eng = Engine(self.config)
            self.engines[partition] = eng
            self._dirty_batches[partition] = 0
            self._saved_at[partition] = wall
        return eng

    def touched(self, partition: int) -> None:
        self._dirty_batches[partition] = self._dirty_batches.get(partition, 0) + 1

    def due(self, wall: float) -> list[int]:
        """Partitions whose state changed and is N batches or T seconds past its last save."""
        out = []
        for p, n in self._dirty_batches.items():
            if n and (n >= self.every_batches or wall - self._saved_at[p] >= self.every_s):
                out.append(p)
        return out

    def dirty(self) -> list[int]:
        return [p for p, n in self._dirty_batches.items() if n]

    def saved(self, partition: int, wall: float) -> None:
        self._dirty_batches[partition] = 0
        self._saved_at[partition] = wall

    def drop(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.engines.pop(p, None)
            self.restored.discard(p)
            self._dirty_batches.pop(p, None)
            self._saved_at.pop(p, None)

    def active_alerts(self) -> list[Alert]:
        out: list[Alert] = []
        for p in sorted(self.engines):
            out.extend(self.engines[p].lifecycle.active_alerts())
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
