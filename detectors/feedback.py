"""Decline of user feedback scores, per (model, model_version).

Two exponentially weighted means per series: a slow baseline and a fast recent
mean. The statistic is how far the fast mean sits below the baseline, in standard
errors of the fast mean; only declines count (users getting happier is not an
incident). A finding also needs the drop to matter in score points (``min_drop``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from detectors._tracking import FiringState, clean_ts, fmt, groups, labels_of
from detectors.base import Detector, DetectorConfig, DetectorOutput, Finding, squash
from detectors.registry import SeriesRegistry, grow
from schemas.columns import FeedbackColumns

# Baseline mean, baseline variance, fast mean, events seen.
_MEAN, _VAR, _FAST, _N = range(4)


class FeedbackConfig(DetectorConfig):
    fast_alpha: float = Field(0.05, gt=0, le=1)  # per rating, ~20 ratings
    slow_alpha: float = Field(0.005, gt=0, le=1)  # per rating, ~200 ratings
    z_threshold: float = Field(4.0, gt=0)
    declined_learning: float = Field(0.1, ge=0, le=1)  # slow_alpha factor while declined
    min_drop: float = Field(0.1, ge=0)  # score points on the [-1, 1] scale
    warmup: int = Field(50, ge=1)
    series_ttl_s: float = Field(7 * 86400.0, gt=0)

    @model_validator(mode="after")
    def _fast_is_faster(self) -> FeedbackConfig:
        if self.fast_alpha <= self.slow_alpha:
            raise ValueError("fast_alpha must be larger than slow_alpha")
        return self


class FeedbackDetector(Detector[FeedbackColumns]):
    name: ClassVar[str] = "feedback"
    consumes: ClassVar[type[FeedbackColumns]] = FeedbackColumns
    Config: ClassVar[type[DetectorConfig]] = FeedbackConfig

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.registry = SeriesRegistry(
            ("model", "model_version"), ttl_s=self.cfg.series_ttl_s, initial_capacity=8
        )
        self.state_arr = np.zeros((self.registry.capacity, 4), dtype=np.float64)
        self.firing = FiringState()

    @property
    def cfg(self) -> FeedbackConfig:
        assert isinstance(self.config, FeedbackConfig)
        return self.config

    @property
    def bytes_per_series(self) -> float:
        return float(self.state_arr.itemsize * 4)

    def _z(self, st: list[float]) -> float:
        """Decline of the fast mean below the baseline, in standard errors of the fast mean."""
        if st[_N] < self.cfg.warmup:
            return 0.0
        a = self.cfg.fast_alpha
        # The variance of an EWMA of independent ratings is var * a / (2 - a).
        se = math.sqrt(max(st[_VAR], 1e-4) * a / (2 - a))
        return max(st[_MEAN] - st[_FAST], 0.0) / se

    def update(self, batch: FeedbackColumns) -> DetectorOutput:
        n = len(batch)
        scores = np.zeros(n, dtype=np.float64)
        if n == 0:
            return DetectorOutput(scores, [])
        cfg = self.cfg
        ts = clean_ts(batch.ts)
        ids = self.registry.ids_for(labels_of((batch.model, batch.model_version)), ts)
        self.state_arr = grow(self.state_arr, self.registry.capacity, 0.0)
        values = np.clip(batch.score, -1.0, 1.0)
        findings: list[Finding] = []
        fa, sa = cfg.fast_alpha, cfg.slow_alpha
        for sid, rows in groups(ids):
            st = self.state_arr[sid].tolist()
            z_rows = np.zeros(rows.size)
            for j, x in enumerate(values[rows].tolist()):
                if not math.isfinite(x):
                    z_rows[j] = self._z(st)
                    continue
                if st[_N] == 0:
                    st = [x, 0.0, x, 1.0]
                else:
                    # Warm-up averages plainly, then the baseline moves slowly.
                    a = max(sa, 1.0 / (st[_N] + 1))
                    if self._z(st) >= cfg.z_threshold / 2:
                        # Ratings during a decline teach the baseline slowly, so a decline
                        # stays visible; a lasting one still becomes normal in time.
                        a *= cfg.declined_learning
                    d = x - st[_MEAN]
                    st[_MEAN] += a * d
                    st[_VAR] = (1 - a) * (st[_VAR] + a * d * d)
                    st[_FAST] += max(fa, 1.0 / (st[_N] + 1)) * (x - st[_FAST])
                    st[_N] += 1
                z_rows[j] = self._z(st)
            self.state_arr[sid] = st
            scores[rows] = squash(z_rows, cfg.z_threshold)
            findings.extend(self._finding(sid, st, float(ts[rows].max())))
        self._evict(float(ts.max()))
        return DetectorOutput(scores, findings)

    def _finding(self, sid: int, st: list[float], ts: float) -> list[Finding]:
        cfg = self.cfg
        z = self._z(st)
        drop = st[_MEAN] - st[_FAST]
        anomalous = z >= cfg.z_threshold and drop >= cfg.min_drop
        labels = self.registry.labels(sid)
        se = math.sqrt(max(st[_VAR], 1e-4) * cfg.fast_alpha / (2 - cfg.fast_alpha))

        def make(anomalous: bool) -> Finding:
            verb = "fell to" if anomalous else "is back at"
            text = (
                f"user feedback for {labels['model']} {labels['model_version']} {verb} "
                f"{fmt(st[_FAST])} (recent ~{round(1 / cfg.fast_alpha)} ratings) from a baseline "
                f"of {fmt(st[_MEAN])}: {fmt(drop)} points lower, {z:.1f} standard errors"
            )
            return Finding(
                detector=self.name,
                kind="feedback.decline",
                series=labels,
                ts=ts,
                score=float(squash(z, cfg.z_threshold)),
                anomalous=anomalous,
                observed=st[_FAST],
                expected=st[_MEAN],
                lower=st[_MEAN] - max(cfg.z_threshold * se, cfg.min_drop),
                upper=None,
                severity="warning" if anomalous else "info",
                explanation=text,
                scope=dict(labels),
            )

        f = self.firing.report(sid, anomalous, make)
        return [] if f is None else [f]

    def _evict(self, now: float) -> None:
        freed = self.registry.evict_idle(now)
        if freed.size:
            self.state_arr[freed] = 0.0
            gone = set(freed.tolist())
            self.firing.forget(lambda k: k in gone)
