"""Offsets a worker will never read: retention deleted them first (offset out of range).

aiokafka resets such a partition to the earliest offset and says so at INFO only. The
worker notices the gap itself, from the offsets (``Progress.skipped``), whatever the
client version: logged at WARNING with the count, counted in
``llmwatch_offset_resets_total`` / ``llmwatch_offsets_skipped_total`` and shown on
/healthz. The Prometheus rule LlmwatchOffsetsSkipped alerts on it.
"""

from __future__ import annotations

import logging

from stream.metrics import WorkerMetrics

log = logging.getLogger("llmwatch.worker")


class OffsetResets:
    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics
        self.skipped: dict[str, int] = {}  # "topic/partition" -> offsets skipped in all

    def reset(self, topic: str, partition: int, resumed_at: int, skipped: int) -> None:
        key = f"{topic}/{partition}"
        self.skipped[key] = self.skipped.get(key, 0) + skipped
        self.metrics.offset_resets.labels(topic).inc()
        self.metrics.offsets_skipped.labels(topic).inc(skipped)
        log.warning(
            "%s: offsets %d..%d were deleted by retention before this worker read them "
            "(offset out of range, reset to %d): %d messages skipped; the worker lags "
            "more than the topic's retention",
            key,
            resumed_at - skipped,
            resumed_at - 1,
            resumed_at,
            skipped,
        )
