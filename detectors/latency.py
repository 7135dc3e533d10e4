"""Latency: a recent high quantile of latency, TTFT and TPOT against a dynamic baseline.

Per (model, model_version, gateway), and per (host, model) where the gateway knows the
serving host (so a throttling GPU shows up with a host label), each metric keeps:

* a decayed log-bucket sketch (relative accuracy ``relative_accuracy``, window
  half-life ``window_half_life_s``) giving the window's ``quantile`` (p99 by default);
* a slow event-time EWMA of the log of that quantile (``baseline_half_life_s``): the
  baseline and its spread, floored at ``min_rel_spread`` so a very steady series does
  not page on noise.

Alert budget (``alert_budget``, ``alert_budget_overrides``: ``detectors.budget``): the
window quantile decorrelates over about one window half-life, so a series makes about
one independent evaluation per ``window_half_life_s``; its threshold is the z whose
one-sided tail probability is the budget's share of those (0.5 false alerts a week at a
60 s half-life: z 3.89), computed per series from its labels when it is first seen.
``threshold_z``, when set, fixes it for every series instead. The z is against the
series' own baseline spread (a log-normal fit of its window quantile), with the floors
below for what physics says is not a fault however rare.

The row score is ``squash(z, threshold)`` of the window quantile's z against the
baseline (slowdowns only): 0.5 at the budgeted threshold. A slot over its threshold is
anomalous once the slowdown is confirmed as still produced (``confirm_s``,
``confirm_segments``, see ``_quantile_baseline``): a load spike that saturates one host
for a few seconds leaves its window p99 high for minutes with no slow request since,
and that is not a fault. Freezing: while z is above the threshold the baseline does
not learn, so an ongoing incident is not absorbed. After ``max_freeze_s`` of continuous
freeze the detector accepts the current level as the new normal: the baseline restarts
from it, and the series recovers (one recovery finding). Choose ``max_freeze_s`` longer
than the incidents you want to keep alerting on.

Against ordinary life (see ``_quantile_baseline``): a version window's quantile counts
only once ``min_tail_count`` of its rows are expected above it (a thinner window's
"p99" is one or two slow requests); no verdict for ``warmup_s``; the
family's median slowdown (load lifts every series) is taken off each series; and a
slowdown must be ``min_rel_effect`` large as well as ``threshold_z`` sure. Host level
goes first, so a version whose slowdown one slow host explains (exactly one of its
model's hosts is anomalous) names that host: a GPU alert there inhibits it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from detectors._latency_config import METRICS as METRICS
from detectors._latency_config import LatencyConfig as LatencyConfig
from detectors._quantile_baseline import QuantileBaseline, QuantileParams, SlotView
from detectors._tracking import Culprits, FiringState, clean_ts, fmt, labels_of
from detectors.base import Detector, DetectorConfig, DetectorOutput, Finding, Migration, squash
from detectors.budget import budget_z
from schemas.columns import InferenceColumns
from schemas.labels import label_codes

_NAMES = {"latency_ms": "latency", "ttft_ms": "TTFT", "tpot_ms": "TPOT"}
# Host first: a version's slowdown that one slow host explains is localised to it.
LEVELS = {
    "host": ("host", "model"),
    "version": ("model", "model_version", "gateway"),
}


def _hosted_rows(batch: InferenceColumns) -> npt.NDArray[np.intp]:
    """Rows that name their serving host."""
    found = label_codes(batch, ("host",))
    if found is None:
        return np.flatnonzero(labels_of((batch.host,))[0] != "")
    codes, keys = found
    if ("",) not in keys:
        return np.arange(codes.size)
    return np.flatnonzero(codes != keys.index(("",)))


def _from_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """State version 1 kept each level's arrays as attributes of its baseline object."""
    for level in payload["state"]["levels"].values():
        level.upgrade_v1()
    return payload


def _from_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """State version 2 had no per-slot thresholds or confirmations (they start fresh:
    thresholds are set again from the budget as series show up)."""
    fresh = LatencyDetector(**payload["params"]).levels
    for name, level in payload["state"]["levels"].items():
        level.upgrade_v2(fresh[name].p)
    # The pickled config predates the budget fields: the one built from params stays.
    state = {k: v for k, v in payload["state"].items() if k != "config"}
    return {**payload, "state": state}


class LatencyDetector(Detector[InferenceColumns, LatencyConfig]):
    name: ClassVar[str] = "latency"
    consumes: ClassVar[type[InferenceColumns]] = InferenceColumns
    Config: ClassVar[type[DetectorConfig]] = LatencyConfig
    state_version: ClassVar[int] = 3
    state_migrations: ClassVar[Mapping[int, Migration]] = {1: _from_v1, 2: _from_v2}

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        cfg = self.cfg
        acc = cfg.relative_accuracy
        params = QuantileParams(
            quantile=cfg.quantile,
            window_half_life_s=cfg.window_half_life_s,
            baseline_half_life_s=cfg.baseline_half_life_s,
            threshold_z=self._default_z(),
            min_log_spread=math.log1p(cfg.min_rel_spread),
            min_window_count=cfg.min_window_count,
            min_tail_count=cfg.min_tail_count,
            min_baseline_weight=cfg.min_baseline_weight,
            max_freeze_s=cfg.max_freeze_s,
            gamma=(1 + acc) / (1 - acc),
            n_buckets=cfg.n_buckets,
            warmup_s=cfg.warmup_s,
            common_mode=cfg.common_mode,
            min_peers=cfg.min_peers,
            common_quantile=cfg.common_quantile,
            min_log_effect=math.log1p(cfg.min_rel_effect),
            confirm_s=cfg.confirm_s,
            confirm_segments=cfg.confirm_segments,
        )
        levels = LEVELS if cfg.host_level else {"version": LEVELS["version"]}
        host_params = dataclasses.replace(params, min_tail_count=0.0)
        self.levels = {
            name: QuantileBaseline(
                labels,
                len(cfg.metrics),
                host_params if name == "host" else params,
                cfg.series_ttl_s,
            )
            for name, labels in levels.items()
        }
        self.firing = FiringState()
        self.culprits = Culprits()
        # Per batch: (model, metric) -> hosts whose own slot is anomalous, and the
        # recoveries of episodes that were localised in this batch.
        self._hot: dict[tuple[str, int], set[str]] = {}
        self._ended: list[Finding] = []

    def _default_z(self) -> float:
        cfg = self.cfg
        if cfg.threshold_z is not None:
            return cfg.threshold_z
        return budget_z(cfg.alert_budget.false_alerts_per_series_week, cfg.window_half_life_s)

    def _z_for(self, level: QuantileBaseline, sid: int) -> float:
        """A series' threshold: fixed, or from the budget its labels select."""
        cfg = self.cfg
        if cfg.threshold_z is not None:
            return cfg.threshold_z
        budget = cfg.budget_for(level.registry.labels(sid))
        return budget_z(budget, cfg.window_half_life_s)

    @property
    def bytes_per_series(self) -> float:
        """Learned array state per (model, model_version, gateway) with all its metrics."""
        return float(self.levels["version"].bytes_per_key())

    def active_series(self) -> int:
        return sum(len(level.registry) for level in self.levels.values())

    def update(self, batch: InferenceColumns) -> DetectorOutput:
        n = len(batch)
        scores = np.zeros(n, dtype=np.float64)
        if n == 0:
            return DetectorOutput(scores, [])
        cfg = self.cfg
        ts = clean_ts(batch.ts)
        findings: list[Finding] = []
        self._hot = {}
        self._ended = []
        for level_name, level in self.levels.items():
            rows = np.arange(n)
            subset = None
            if level_name == "host":
                rows = subset = _hosted_rows(batch)
                if rows.size == 0:
                    continue
            sids = level.ids_for_batch(batch, ts[rows], subset)
            z_of = functools.partial(self._z_for, level)
            for m, metric in enumerate(cfg.metrics):
                if cfg.threshold_z is None and cfg.alert_budget_overrides:
                    level.set_thresholds(sids, m, z_of)
                z = level.update(sids, m, ts[rows], getattr(batch, metric)[rows])
                thr = level.thresholds(sids * len(cfg.metrics) + m)
                # squash(z, thr) with a per-series thr: z / (z + thr) == squash(z / thr, 1).
                z_rel = np.maximum(z, 0.0) / thr
                scores[rows] = np.maximum(scores[rows], squash(z_rel, 1.0))
            now = float(ts[rows].max())
            for sid, m in self._to_report(level_name, level, sids):
                f = self._finding(level_name, level, sid, m, now)
                if f is not None:
                    findings.append(f)
            findings.extend(self._ended)
            self._ended = []
            gone = level.evict(float(ts.max()))
            if gone:
                self.firing.forget(functools.partial(_in_level, level=level_name, sids=gone))
                if level_name == "version":
                    for key in [k for k in self.culprits.hosts if k[0] in gone]:  # type: ignore[index]
                        del self.culprits.hosts[key]
        return DetectorOutput(scores, findings)

    def _to_report(
        self, level_name: str, level: QuantileBaseline, sids: npt.NDArray[np.int64]
    ) -> list[tuple[int, int]]:
        """(series, metric) of the batch that can have a finding, in series then metric
        order: anomalous now, firing, or holding a culprit host. The rest would all give
        None, and looking at each one in Python cost ~8 us a slot: most of a batch's time
        when it touches thousands of hosts."""
        uniq = np.unique(sids)
        n_metrics = len(self.cfg.metrics)
        slots = uniq[:, None] * n_metrics + np.arange(n_metrics)
        keep = level.st.last_z[slots] >= level.thresholds(slots)
        held = [k[1:] for k in self.firing.firing if isinstance(k, tuple) and k[0] == level_name]
        if level_name == "version":
            held += [k for k in self.culprits.hosts if isinstance(k, tuple)]
        for sid, m in held:
            i = int(np.searchsorted(uniq, sid))
            if i < uniq.size and uniq[i] == sid:
                keep[i, m] = True
        rows, cols = np.nonzero(keep)
        return list(zip(uniq[rows].tolist(), cols.tolist(), strict=True))

    def _finding(
        self, level_name: str, level: QuantileBaseline, sid: int, m: int, now: float
    ) -> Finding | None:
        v = level.view(sid, m)
        labels = level.registry.labels(sid)
        anomalous_now = v.hot
        if level_name == "host" and anomalous_now:
            self._hot.setdefault((labels["model"], m), set()).add(labels["host"])
        series, ended = labels, None
        if level_name == "version":
            hot = self._hot.get((labels["model"], m), set())
            series, ended = self.culprits.relabel(
                (sid, m),
                anomalous_now,
                labels,
                lambda: None if not hot else next(iter(hot)) if len(hot) == 1 else "",
                upgrade_only=True,
            )
        key = (level_name, sid, m)
        if ended is not None:
            # Localised once the slow host's own verdict came in: the unlocalised
            # episode ends here (a recovery for its labels) and the localised one starts.
            self.firing.firing.discard(key)
            self._ended.append(self._make(level_name, labels, ended, v, m, now, False))
        verdict = self.firing.step(key, anomalous_now)
        return (
            None if verdict is None else self._make(level_name, labels, series, v, m, now, verdict)
        )

    def _make(
        self,
        level_name: str,
        labels: dict[str, str],
        series: dict[str, str],
        v: SlotView,
        m: int,
        now: float,
        anomalous: bool,
    ) -> Finding:
        cfg = self.cfg
        metric = cfg.metrics[m]
        qname = f"p{cfg.quantile * 100:g}"
        where = (
            f"{labels['model']} {labels['model_version']} on {labels['gateway']}"
            if level_name == "version"
            else f"{labels['model']} on host {labels['host']}"
        )
        if level_name == "version" and "host" in series:
            where += f", concentrated on host {series['host']}"
        text = (
            f"{qname} {_NAMES[metric]} {_ms(v.observed)} vs baseline {_ms(v.expected)} "
            f"(normal range {_ms(v.lower)} to {_ms(v.upper)}) for {where}"
        )
        if not anomalous:
            text += " (back to normal)"
        elif not math.isnan(v.frozen_since):
            text += f"; baseline frozen since {fmt(now - v.frozen_since)} s"
        return self.finding(
            f"latency.{_NAMES[metric].lower()}_{qname}",
            series,
            now,
            float(squash(max(v.z, 0.0), v.threshold)),
            anomalous,
            observed=_finite(v.observed),
            expected=v.expected,
            lower=v.lower,
            upper=v.upper,
            severity="error" if v.z >= 2 * v.threshold else "warning",
            explanation=text,
        )


def _in_level(key: object, level: str, sids: set[int]) -> bool:
    return isinstance(key, tuple) and key[0] == level and key[1] in sids


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _ms(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{fmt(value / 1000.0)} s" if value >= 1000.0 else f"{fmt(value)} ms"
