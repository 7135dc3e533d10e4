"""What the worker has learned about the fleet, as Prometheus metrics, in base units.

Names follow Prometheus's conventions (``promtool check metrics`` is clean): seconds
and bytes, one unit per metric, and no ``quantile`` label on a gauge (that label
means a summary): the quantile a gauge holds is ``quantile_level``.

=========================================  =========================================
metric                                     replaces (until 0.3: recording rules in
                                           deploy/prometheus/rules/llmwatch-aliases.yml)
=========================================  =========================================
llmwatch_fleet_latency_seconds             llmwatch_fleet_latency_ms (quantile, ms)
  {metric="latency"|"ttft", quantile_level}
llmwatch_fleet_baseline_seconds            llmwatch_fleet_baseline_ms (declared, never set)
  {metric, bound="expected"|"lower"|"upper", quantile_level}
llmwatch_fleet_gpu_temperature_celsius     llmwatch_fleet_gpu{metric="temp_c"}
llmwatch_fleet_gpu_utilization_ratio       llmwatch_fleet_gpu{metric="sm_util_pct"} / 100
llmwatch_fleet_gpu_memory_used_bytes       llmwatch_fleet_gpu{metric="mem_used_mib"} * 2^20
llmwatch_fleet_gpu_power_watts             llmwatch_fleet_gpu{metric="power_w"}
llmwatch_fleet_gpu_sm_clock_hertz          llmwatch_fleet_gpu{metric="sm_clock_mhz"} * 1e6
=========================================  =========================================

The baseline is the ``latency`` detector's own (its ``quantile``, p99 by default, per
model x version x gateway), read from every engine's detector when the worker
refreshes its gauges: the dashboard draws exactly what the detector compares with.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge

from detectors._gpu_state import (
    HW_POWER_BRAKE_SLOWDOWN,
    HW_SLOWDOWN,
    HW_THERMAL_SLOWDOWN,
    SW_POWER_CAP,
    SW_THERMAL_SLOWDOWN,
)
from schemas.columns import STATUS_CODES, Columns, GpuColumns, InferenceColumns
from schemas.labels import label_codes

STATUS_NAMES = tuple(STATUS_CODES)  # status code -> name
THROTTLE_MASK = (
    SW_POWER_CAP | HW_SLOWDOWN | SW_THERMAL_SLOWDOWN | HW_THERMAL_SLOWDOWN | HW_POWER_BRAKE_SLOWDOWN
)
# 0.95: the dashboards' and runbooks' quantile; 0.99: the latency detector's default.
FLEET_QUANTILES = (0.5, 0.95, 0.99)
# event column (milliseconds) -> the metric label
FLEET_LATENCY_FIELDS = {"latency_ms": "latency", "ttft_ms": "ttft"}
# GpuSample column -> (metric name, factor to its base unit)
GPU_GAUGES = {
    "temp_c": ("llmwatch_fleet_gpu_temperature_celsius", "GPU temperature", 1.0),
    "sm_util_pct": ("llmwatch_fleet_gpu_utilization_ratio", "SM utilisation (0-1)", 0.01),
    "mem_used_mib": ("llmwatch_fleet_gpu_memory_used_bytes", "Framebuffer used", 2.0**20),
    "power_w": ("llmwatch_fleet_gpu_power_watts", "Power draw", 1.0),
    "sm_clock_mhz": ("llmwatch_fleet_gpu_sm_clock_hertz", "SM clock", 1e6),
}
SERIES = ("model", "model_version", "gateway")
_CHILD_CACHE_MAX = 50_000


class FleetMetrics:
    """Registered next to ``WorkerMetrics`` (same registry). Labels are series labels
    from the wire models, so cardinality is the number of live series."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.latency = Gauge(
            "llmwatch_fleet_latency_seconds",
            "Observed request latency / TTFT quantile over the last batch, per series",
            [*SERIES, "metric", "quantile_level"],
            registry=r,
        )
        self.baseline = Gauge(
            "llmwatch_fleet_baseline_seconds",
            "The latency detector's learned baseline of its quantile: expected value and "
            "alert bounds",
            [*SERIES, "metric", "bound", "quantile_level"],
            registry=r,
        )
        self.requests = Counter(
            "llmwatch_fleet_requests",
            "Inference events seen, by series and status",
            [*SERIES, "status"],
            registry=r,
        )
        self.gpu = {
            col: Gauge(name, f"{doc}, last sample per GPU", ["host", "gpu_uuid"], registry=r)
            for col, (name, doc, _) in GPU_GAUGES.items()
        }
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
        found = label_codes(b, SERIES)
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
        for column, metric in FLEET_LATENCY_FIELDS.items():
            values: npt.NDArray[np.float64] = getattr(b, column)
            finite = np.isfinite(values)
            quantiles = group_quantiles(ids[finite], values[finite], len(series))
            for sid in np.flatnonzero(~np.isnan(quantiles[:, 0])).tolist():
                for q, v in zip(FLEET_QUANTILES, quantiles[sid].tolist(), strict=True):
                    self._child(self.latency, (*series[sid], metric, f"{q:g}")).set(v / 1000.0)

    def _gpu(self, b: GpuColumns) -> None:
        ids, devices = group_ids(b.host, b.gpu_uuid)
        # The last row of each device in the batch is its current state.
        last = np.zeros(len(devices), dtype=np.int64)
        last[ids] = np.arange(len(ids))
        for dev, row in zip(devices, last.tolist(), strict=True):
            for column, (_, _, factor) in GPU_GAUGES.items():
                value = float(getattr(b, column)[row])
                if np.isfinite(value):
                    self._child(self.gpu[column], dev).set(value * factor)
            throttled = int(b.clocks_event_reasons[row]) & THROTTLE_MASK
            self._child(self.gpu_throttled, dev).set(1 if throttled else 0)
        xids = np.bincount(ids[b.xid >= 0], minlength=len(devices))
        for dev, count in zip(devices, xids.tolist(), strict=True):
            # Every GPU's XID counter exists from its first sample: 0, not "no data".
            self._child(self.gpu_xid, dev).inc(count)

    def baselines(self, engines: Iterable[Any]) -> int:
        """Copy every engine's latency baselines (version level) into the gauge; returns
        the series set. Series still warming up (no baseline weight yet) are skipped."""
        n = 0
        for engine in engines:
            for det in getattr(engine, "detectors", ()):
                if det.name == "latency":
                    n += self._latency_baselines(det)
        return n

    def _latency_baselines(self, det: Any) -> int:
        level = det.levels["version"]
        # The per-slot arrays sit on the level or on its state holder, by version.
        weight = getattr(level, "st", level).weight
        metrics = [m for m in det.cfg.metrics if m in FLEET_LATENCY_FIELDS]
        q = f"{det.cfg.quantile:g}"
        n = 0
        for sid in level.registry.active_ids().tolist():
            labels = level.registry.labels(sid)
            series = tuple(labels.get(k, "") for k in SERIES)
            for column in metrics:
                m = det.cfg.metrics.index(column)
                if weight[sid * level.n_metrics + m] <= 0:
                    continue
                v = level.view(sid, m)
                for bound, value in (
                    ("expected", v.expected),
                    ("lower", v.lower),
                    ("upper", v.upper),
                ):
                    if math.isfinite(value):
                        key = (*series, FLEET_LATENCY_FIELDS[column], bound, q)
                        self._child(self.baseline, key).set(value / 1000.0)
                        n += 1
        return n


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
