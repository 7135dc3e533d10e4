"""Generic numeric series: spikes and level shifts in any metric (scraped or replayed CSV).

Per series, an event-time EWMA of mean and variance gives a z-score for each
point (pre-update, so a point never hides itself), and a two-sided CUSUM on the
clipped z catches level shifts too small for a single point to stand out. The
baseline freezes while points are far out, so an ongoing shift keeps scoring;
after ``max_freeze_s`` the new level is accepted as normal.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from detectors import kernels
from detectors._tracking import FiringState, clean_ts, fmt, groups
from detectors.base import Detector, DetectorConfig, DetectorOutput, Finding, squash
from detectors.registry import SeriesRegistry
from schemas.columns import MetricColumns

# mean, var, weight, last_t, frozen_since, cusum hi, cusum lo, alarm_since
_STATE_COLUMNS = 8


class SeriesConfig(DetectorConfig):
    half_life_s: float = Field(6 * 3600.0, gt=0)
    min_weight: float = Field(20.0, gt=0)  # decayed points before a series is scored
    z_threshold: float = Field(5.0, gt=0)
    cusum_k: float = Field(0.5, ge=0)  # slack, in standard deviations
    cusum_h: float = Field(12.0, gt=0)  # decision interval, in standard deviations
    gate_z: float = Field(3.0, gt=0)  # points beyond this are not learned (freeze)
    max_freeze_s: float = Field(3 * 3600.0, gt=0)
    relative_floor: float = Field(0.01, ge=0)  # sd never below this fraction of |mean|
    series_ttl_s: float = Field(7 * 86400.0, gt=0)


class SeriesDetector(Detector[MetricColumns]):
    name: ClassVar[str] = "series"
    consumes: ClassVar[type[MetricColumns]] = MetricColumns
    Config: ClassVar[type[DetectorConfig]] = SeriesConfig

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.registry = SeriesRegistry(("series",), ttl_s=self.cfg.series_ttl_s)
        self.st = self._fresh(self.registry.capacity)
        self.firing = FiringState()

    @property
    def cfg(self) -> SeriesConfig:
        assert isinstance(self.config, SeriesConfig)
        return self.config

    @property
    def bytes_per_series(self) -> float:
        return float(self.st.itemsize * _STATE_COLUMNS)

    @staticmethod
    def _fresh(capacity: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        st = np.zeros((_STATE_COLUMNS, capacity), dtype=np.float64)
        st[3] = -np.inf
        st[4] = np.nan
        st[7] = np.nan
        return st

    def _grow(self) -> None:
        cap = self.registry.capacity
        if self.st.shape[1] < cap:
            fresh = self._fresh(cap)
            fresh[:, : self.st.shape[1]] = self.st
            self.st = fresh

    def update(self, batch: MetricColumns) -> DetectorOutput:
        n = len(batch)
        scores = np.zeros(n, dtype=np.float64)
        if n == 0:
            return DetectorOutput(scores, [])
        cfg = self.cfg
        ts = clean_ts(batch.ts)
        ids = self.registry.ids_for((batch.series,), ts)
        self._grow()
        mean, var, weight, last_t, frozen, s_hi, s_lo, alarm_since = self.st
        x = np.where(np.isfinite(batch.value), batch.value, np.nan)
        self._accept_old_alarms(float(ts.max()))
        # While a series is in alarm its points are scored but not learned: a level
        # shift made of in-gate points would otherwise become the baseline within hours.
        in_alarm = np.isfinite(alarm_since[ids])
        learn_x = np.where(in_alarm, np.nan, x)
        z = kernels.ewma_update(
            ids, ts, learn_x, mean, var, weight, last_t, frozen,
            cfg.half_life_s, cfg.min_weight, 1e-12, -cfg.gate_z, cfg.gate_z, cfg.max_freeze_s,
        )  # fmt: skip
        sd = np.sqrt(np.maximum(var[ids], 1e-12))
        z = np.where(in_alarm, (x - mean[ids]) / sd, z)
        floor = cfg.relative_floor * np.abs(mean[ids])
        z = np.where(sd < floor, z * sd / np.maximum(floor, 1e-12), z)
        # Clipping bounds one wild point's weight in the CUSUM; capping the sums bounds
        # how long a series stays in alarm after a shift ends (about h / k points).
        zc = np.nan_to_num(np.clip(z, -2 * cfg.gate_z, 2 * cfg.gate_z))
        hi, lo = kernels.cusum_update(ids, zc, s_hi, s_lo, cfg.cusum_k, np.inf)
        np.minimum(s_hi, 1.5 * cfg.cusum_h, out=s_hi)
        np.minimum(s_lo, 1.5 * cfg.cusum_h, out=s_lo)
        point = squash(np.abs(np.nan_to_num(z)), cfg.z_threshold)
        shift = squash(np.maximum(hi, lo), cfg.cusum_h)
        scores = np.maximum(point, shift)
        findings: list[Finding] = []
        for sid, rows in groups(ids):
            worst = rows[int(np.argmax(scores[rows]))]
            last = rows[-1]
            if scores[last] >= 0.5 and not np.isfinite(alarm_since[sid]):
                alarm_since[sid] = ts[rows[int(np.argmax(scores[rows] >= 0.5))]]
            elif scores[last] < 0.5:
                alarm_since[sid] = np.nan
            findings.extend(self._finding(sid, batch, ts, worst, float(scores[worst])))
        self._evict(float(ts.max()))
        return DetectorOutput(scores, findings)

    def _finding(
        self, sid: int, batch: MetricColumns, ts: np.ndarray[Any, Any], row: int, score: float
    ) -> list[Finding]:
        cfg = self.cfg
        mean, var = float(self.st[0, sid]), float(self.st[1, sid])
        sd = max(float(np.sqrt(max(var, 0.0))), cfg.relative_floor * abs(mean))
        observed = float(batch.value[row])
        labels = {"series": str(batch.series[row]), **dict(batch.labels[row])}
        if not np.isfinite(observed):
            return []

        def make(anomalous: bool) -> Finding:
            state = "outside" if anomalous else "back within"
            text = (
                f"{batch.name[row]} at {fmt(observed)} is {state} its baseline "
                f"{fmt(mean)} (+/-{fmt(sd)}) for {labels['series']}"
            )
            return Finding(
                detector=self.name,
                kind="series.level",
                series=labels,
                ts=float(ts[row]),
                score=score,
                anomalous=anomalous,
                observed=observed,
                expected=mean,
                lower=mean - cfg.z_threshold * sd,
                upper=mean + cfg.z_threshold * sd,
                severity="warning" if anomalous else "info",
                explanation=text,
            )

        f = self.firing.report(sid, score >= 0.5, make)
        return [] if f is None else [f]

    def _accept_old_alarms(self, now: float) -> None:
        """After ``max_freeze_s`` in alarm, the shifted level is the new normal."""
        alarm_since = self.st[7]
        old = np.flatnonzero(now - alarm_since > self.cfg.max_freeze_s)
        if old.size:
            self.st[2, old] = 0.0  # weight: relearn from scratch, scoring resumes after warm-up
            self.st[5, old] = 0.0
            self.st[6, old] = 0.0
            alarm_since[old] = np.nan

    def _evict(self, now: float) -> None:
        freed = self.registry.evict_idle(now)
        if freed.size:
            self.st[:, freed] = self._fresh(1)[:, :1]
            gone = set(freed.tolist())
            self.firing.forget(lambda k: k in gone)

    def state(self) -> dict[str, Any]:
        return {
            "registry": self.registry.state(),
            "st": self.st.copy(),
            "firing": set(self.firing.firing),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.registry.set_state(state["registry"])
        self.st = np.array(state["st"], dtype=np.float64)
        self.firing = FiringState()
        self.firing.firing = set(state["firing"])
