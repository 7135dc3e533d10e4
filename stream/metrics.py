"""Prometheus metrics of one worker, in a registry of its own.

Each worker (and each test) gets a fresh ``WorkerMetrics``, so nothing is shared
through prometheus-client's global default registry and two apps in one process
never collide on metric names.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from detectors._gpu_state import (
    HW_POWER_BRAKE_SLOWDOWN,
    HW_SLOWDOWN,
    HW_THERMAL_SLOWDOWN,
    SW_POWER_CAP,
    SW_THERMAL_SLOWDOWN,
)
from schemas.columns import STATUS_CODES, Columns, GpuColumns, InferenceColumns
from schemas.labels import label_codes

__all__ = [
    "CONTENT_TYPE_LATEST",
    "FleetMetrics",
    "NotifierMetrics",
    "WorkerMetrics",
    "reason_class",
]

STATUS_NAMES = tuple(STATUS_CODES)  # status code -> name
THROTTLE_MASK = (
    SW_POWER_CAP | HW_SLOWDOWN | SW_THERMAL_SLOWDOWN | HW_THERMAL_SLOWDOWN | HW_POWER_BRAKE_SLOWDOWN
)
FLEET_QUANTILES = (0.5, 0.99)
FLEET_LATENCY_FIELDS = ("latency_ms", "ttft_ms")
GPU_FIELDS = ("temp_c", "sm_util_pct", "mem_used_mib", "power_w", "sm_clock_mhz")
_CHILD_CACHE_MAX = 50_000

_BATCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# Whole-message failures ("$") carry no field, so their class comes from the reason.
_WHOLE_MESSAGE = (
    ("not valid JSON", "json"),
    ("expected a JSON object", "not_object"),
    ("over the limit", "too_large"),
    ("not bytes", "not_bytes"),
)


def reason_class(reason: str, location: str) -> str:
    """A bounded label for a reject: the offending top-level field, or what was wrong.

    Field names come from the wire models, so the label set stays small whatever
    the messages contain.
    """
    if location and location != "$":
        return location.split(".", 1)[0]
    for needle, name in _WHOLE_MESSAGE:
        if needle in reason:
            return name
    return "invalid"


class WorkerMetrics:
    """Every metric the worker exports; ``render()`` is the /metrics body."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events_in = Counter(
            "llmwatch_events_in", "Messages consumed, by source topic", ["topic"], registry=r
        )
        self.events_accepted = Counter(
            "llmwatch_events_accepted",
            "Messages that decoded and reached the detectors",
            ["topic"],
            registry=r,
        )
        self.rejects = Counter(
            "llmwatch_rejects",
            "Messages sent to the dead-letter topic, by source topic and reason class",
            ["topic", "reason_class"],
            registry=r,
        )
        self.decode_paths = Counter(
            "llmwatch_decode_messages",
            "Messages by decode path: columnar (the fast one), per_message (a batch with an "
            "unknown field, a newline in a message or invalid JSON), reference (rows the "
            "pydantic models re-check)",
            ["topic", "path"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "llmwatch_batch_seconds",
            "Wall time to decode, score and publish one batch",
            ["topic"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "llmwatch_batch_size",
            "Messages per batch",
            ["topic"],
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
            registry=r,
        )
        self.detector_seconds = Histogram(
            "llmwatch_detector_seconds",
            "Wall time in the engine (detectors and alert lifecycle) per batch, by event kind",
            ["kind"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "llmwatch_consumer_lag",
            "Messages between the last one processed and the partition's high watermark",
            ["topic", "partition"],
            registry=r,
        )
        self.active_series = Gauge(
            "llmwatch_active_series",
            "Series with learned state, summed over this worker's engines, by detector",
            ["detector"],
            registry=r,
        )
        self.alerts = Counter(
            "llmwatch_alerts",
            "Alert events published, by status and severity",
            ["status", "severity"],
            registry=r,
        )
        self.active_alerts = Gauge(
            "llmwatch_active_alerts",
            "Alerts currently firing on this worker, by severity",
            ["severity"],
            registry=r,
        )
        self.checkpoints = Counter(
            "llmwatch_checkpoints",
            "Engine snapshots written to the state changelog",
            registry=r,
        )
        self.engines = Gauge(
            "llmwatch_engines", "Source partitions with a live engine on this worker", registry=r
        )
        self.watermark = Gauge(
            "llmwatch_watermark_seconds",
            "Highest event time seen by this worker's engines (epoch seconds)",
            registry=r,
        )
        self.fleet = FleetMetrics(r)
        self._add_loss_metrics(r)

    def _add_loss_metrics(self, r: CollectorRegistry) -> None:
        """Every way input can be set aside or skipped: never silent (issue 16)."""
        self.poison = Counter(
            "llmwatch_poison_messages",
            "Messages isolated because decoding (stage=decode) or the engine (stage=engine) "
            "raised on them alone; each went to the dead-letter topic",
            ["topic", "stage"],
            registry=r,
        )
        self.engine_failures = Counter(
            "llmwatch_engine_batch_failures",
            "Batches the engine raised on, by outcome: retried (the one retry on a rebuilt "
            "engine succeeded) or bisected (cut down to the rows that fail)",
            ["topic", "outcome"],
            registry=r,
        )
        self.state_restore_failures = Counter(
            "llmwatch_state_restore_failures",
            "Saved engine snapshots that could not be loaded, by what was wrong "
            "(manifest, chunk_missing, digest, decompress, engine)",
            ["reason"],
            registry=r,
        )
        self.offset_resets = Counter(
            "llmwatch_offset_resets",
            "Offset-out-of-range resets of a source partition (retention overran the worker)",
            ["topic"],
            registry=r,
        )
        self.offsets_skipped = Counter(
            "llmwatch_offsets_skipped",
            "Messages skipped by offset-out-of-range resets: deleted by retention unread",
            ["topic"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class FleetMetrics:
    """What the worker has learned about the fleet, for the fleet dashboard.

    Registered next to ``WorkerMetrics`` (same registry). Labels are series
    labels from the wire models, so cardinality is the number of live series.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.latency_ms = Gauge(
            "llmwatch_fleet_latency_ms",
            "Observed request latency quantile over the last batch window",
            ["model", "model_version", "gateway", "metric", "quantile"],
            registry=r,
        )
        self.baseline_ms = Gauge(
            "llmwatch_fleet_baseline_ms",
            "The latency detector's learned baseline: expected value and alert bounds",
            ["model", "model_version", "gateway", "metric", "bound"],
            registry=r,
        )
        self.requests = Counter(
            "llmwatch_fleet_requests",
            "Inference events seen, by series and status",
            ["model", "model_version", "gateway", "status"],
            registry=r,
        )
        self.gpu_value = Gauge(
            "llmwatch_fleet_gpu",
            "Last GPU sample per device: temp_c, sm_util_pct, mem_used_mib, power_w, sm_clock_mhz",
            ["host", "gpu_uuid", "metric"],
            registry=r,
        )
        self.gpu_xid = Counter(
            "llmwatch_fleet_gpu_xid_errors",
            "XID errors reported by GPU agents",
            ["host", "gpu_uuid"],
            registry=r,
        )
        self.gpu_throttled = Gauge(
            "llmwatch_fleet_gpu_throttled",
            "1 while the GPU reports a throttling clocks-event reason",
            ["host", "gpu_uuid"],
            registry=r,
        )
        # Label lookups cost microseconds each; batches repeat the same few series.
        self._children: dict[tuple[int, tuple[Hashable, ...]], Any] = {}

    def _child(self, metric: Any, labels: tuple[Hashable, ...]) -> Any:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            if len(self._children) >= _CHILD_CACHE_MAX:
                self._children.clear()
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, batch: Columns) -> None:
        """Aggregate one decoded batch into the fleet metrics (per series, not per event)."""
        if not len(batch):
            return
        if isinstance(batch, InferenceColumns):
            self._inference(batch)
        elif isinstance(batch, GpuColumns):
            self._gpu(batch)

    def _inference(self, b: InferenceColumns) -> None:
        # The batch's cached codes: the detectors key by these same labels, so the rows
        # are hashed once for both.
        found = label_codes(b, ("model", "model_version", "gateway"))
        if found is None:
            ids, series = group_ids(b.model, b.model_version, b.gateway)
        else:
            ids = found[0].astype(np.int64, copy=False)
            series = [tuple(str(v) for v in key) for key in found[1]]
        n_status = len(STATUS_NAMES)
        pairs, counts = np.unique(ids * n_status + b.status, return_counts=True)
        for pair, count in zip(pairs.tolist(), counts.tolist(), strict=True):
            sid, code = divmod(pair, n_status)
            status = STATUS_NAMES[code] if 0 <= code < n_status else "unknown"
            self._child(self.requests, (*series[sid], status)).inc(count)
        for name in FLEET_LATENCY_FIELDS:
            values: npt.NDArray[np.float64] = getattr(b, name)
            finite = np.isfinite(values)
            quantiles = group_quantiles(ids[finite], values[finite], len(series))
            for sid in np.flatnonzero(~np.isnan(quantiles[:, 0])).tolist():
                for q, v in zip(FLEET_QUANTILES, quantiles[sid].tolist(), strict=True):
                    self._child(self.latency_ms, (*series[sid], name, f"{q:g}")).set(v)

    def _gpu(self, b: GpuColumns) -> None:
        ids, devices = group_ids(b.host, b.gpu_uuid)
        # The last row of each device in the batch is its current state.
        last = np.zeros(len(devices), dtype=np.int64)
        last[ids] = np.arange(len(ids))
        for dev, row in zip(devices, last.tolist(), strict=True):
            for name in GPU_FIELDS:
                value = float(getattr(b, name)[row])
                if np.isfinite(value):
                    self._child(self.gpu_value, (*dev, name)).set(value)
            throttled = int(b.clocks_event_reasons[row]) & THROTTLE_MASK
            self._child(self.gpu_throttled, dev).set(1 if throttled else 0)
        xids = np.bincount(ids[b.xid >= 0], minlength=len(devices))
        for dev, count in zip(devices, xids.tolist(), strict=True):
            if count:
                self._child(self.gpu_xid, dev).inc(count)


def group_quantiles(
    ids: npt.NDArray[np.int64], values: npt.NDArray[np.float64], groups: int
) -> npt.NDArray[np.float64]:
    """``FLEET_QUANTILES`` of ``values`` per group id (rows: groups; NaN for empty groups).

    One sort for every group at once; linear interpolation as ``np.quantile`` does.
    """
    out = np.full((groups, len(FLEET_QUANTILES)), np.nan)
    if not len(values):
        return out
    ordered = values[np.lexsort((values, ids))]
    counts = np.bincount(ids, minlength=groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    have = counts > 0
    c, s = counts[have], starts[have]
    for j, q in enumerate(FLEET_QUANTILES):
        pos = q * (c - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, c - 1)
        a, b = ordered[s + lo], ordered[s + hi]
        out[have, j] = a + (pos - lo) * (b - a)
    return out


def group_ids(
    *columns: npt.NDArray[Any],
) -> tuple[npt.NDArray[np.int64], list[tuple[str, ...]]]:
    """Dense group id per row over the label columns, and each group's labels (None -> "")."""
    keys = list(zip(*(c.tolist() for c in columns), strict=True))
    index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    ids = np.fromiter(map(index.__getitem__, keys), np.int64, len(keys))
    groups = [tuple("" if v is None else str(v) for v in k) for k in index]
    return ids, groups


class NotifierMetrics:
    """Every metric the notifier (``llmwatch notify``) exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.alerts_in = Counter(
            "llmwatch_notify_alerts_in", "Alert events consumed from the alerts topic", registry=r
        )
        self.deliveries = Counter(
            "llmwatch_notify_deliveries",
            "Finished deliveries, by receiver and outcome (sent, deduplicated, dead_lettered)",
            ["receiver", "outcome"],
            registry=r,
        )
        self.retries = Counter(
            "llmwatch_notify_retries",
            "Delivery attempts after the first, by receiver",
            ["receiver"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "llmwatch_notify_delivery_seconds",
            "Wall time from first attempt to final outcome, by receiver",
            ["receiver"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
            registry=r,
        )
        self.consumer_lag = Gauge(
            "llmwatch_notify_consumer_lag",
            "Alert events not yet consumed by the notifier",
            ["partition"],
            registry=r,
        )
        self.silenced = Counter(
            "llmwatch_notify_silenced",
            "Deliveries not made because a silence matched, by receiver",
            ["receiver"],
            registry=r,
        )
        self.in_flight = Gauge(
            "llmwatch_notify_in_flight",
            "Alert events consumed but not yet finished by every receiver",
            registry=r,
        )
        self.oldest_undelivered = Gauge(
            "llmwatch_notify_oldest_undelivered_seconds",
            "Age of the oldest alert event some receiver has not finished (0 when none)",
            registry=r,
        )
        self.paused = Gauge(
            "llmwatch_notify_paused",
            "1 while consumption is paused because the in-flight window is full",
            registry=r,
        )
        self.active_silences = Gauge(
            "llmwatch_notify_active_silences", "Silences in force now", registry=r
        )
        self.active_acks = Gauge(
            "llmwatch_notify_active_acks", "Unexpired acknowledgements", registry=r
        )
        self.deadletter_writes = Counter(
            "llmwatch_notify_deadletter_writes",
            "Records written to the dead-letter topic by the notifier, by reason class",
            ["reason_class"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
