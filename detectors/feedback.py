"""Decline of user feedback scores, per (model, model_version): a one-sided CUSUM.

Ratings are sparse (a few per cent of requests), so an incident of a minute or two
leaves a few dozen ratings: too few for a windowed mean to be sure of, but enough for a
sequential test that adds up every rating's evidence. Per rating ``x`` in [-1, 1] the
detector adds the log-likelihood ratio of "ratings are tilted towards low scores" to
"ratings are as usual"::

    llr(x) = -tilt * x - log E0[exp(-tilt * x)]

where ``E0`` is a slow EWMA of ``exp(-tilt * x)`` over the series' own ratings (its
baseline, whatever its rating scale's shape). ``E0[exp(llr)] = 1``, so the CUSUM
``S = max(0, S + llr)`` crossing ``threshold`` is a test whose in-control run length is
at least ``exp(threshold)`` ratings (Lorden; ``S`` is capped at 1.5 x threshold so
an episode ends soon after the ratings recover), and its drift is negative unless the mean
drops by roughly ``tilt * variance / 2``: small drops never accumulate. Only declines
count (users getting happier is not an incident).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from detectors._tracking import FiringState, clean_ts, fmt, groups
from detectors.base import Detector, DetectorConfig, DetectorOutput, Finding, squash
from detectors.registry import SeriesRegistry, grow
from schemas.columns import FeedbackColumns

# Baseline mean score, baseline E[exp(-tilt x)], CUSUM, ratings seen, the sum and count
# of ratings since the CUSUM last stood at 0 (the run it adds up), baseline E[exp(-2 tilt x)].
_MEAN, _MGF, _S, _N, _RUN_SUM, _RUN_N, _MGF2 = range(7)
_WIDTH = 7


class FeedbackConfig(DetectorConfig):
    # Exponential tilt of the alternative; 1 targets drops of ~0.3-0.6 points on the
    # [-1, 1] scale, and drops below ~tilt * variance / 2 never accumulate.
    tilt: float = Field(
        1.0,
        gt=0,
        le=5,
        description=(
            "Exponential tilt of the CUSUM's alternative; 1 targets rating drops of "
            "~0.3-0.6 on the [-1, 1] scale."
        ),
    )
    # Log of the in-control run length, in ratings: exp(9) ~ 8000 at the very least.
    threshold: float = Field(
        9.0,
        gt=0,
        description=(
            "CUSUM threshold: log of the in-control run length, in ratings (9 is ~8000 ratings)."
        ),
    )
    slow_alpha: float = Field(
        0.002,
        gt=0,
        le=1,
        description="Learning rate of the rating baseline, per rating (~1000 ratings).",
    )  # baseline, per rating (~1000 ratings)
    declined_learning: float = Field(
        0.1, ge=0, le=1, description="Factor on slow_alpha while a decline is signalled."
    )  # slow_alpha factor while declining
    # A baseline fitted to fewer ratings is too noisy for the CUSUM's calibration.
    warmup: int = Field(
        300, ge=1, description="Ratings the baseline learns from before the CUSUM runs."
    )
    # Each rating's evidence is discounted by this many standard errors of the
    # baseline's log E0[exp(-tilt x)]: a baseline that learned from a lucky spell of
    # good ratings must not turn ordinary ones into evidence.
    baseline_margin: float = Field(
        1.0,
        ge=0,
        description=(
            "Each rating's evidence is discounted by this many standard errors of the "
            "baseline, so a lucky baseline does not turn ordinary ratings into evidence."
        ),
    )
    series_ttl_s: float = Field(
        7 * 86400.0,
        gt=0,
        description="A series with no ratings for this long is forgotten (state freed).",
    )


class FeedbackDetector(Detector[FeedbackColumns]):
    name: ClassVar[str] = "feedback"
    consumes: ClassVar[type[FeedbackColumns]] = FeedbackColumns
    Config: ClassVar[type[DetectorConfig]] = FeedbackConfig

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.registry = SeriesRegistry(
            ("model", "model_version"), ttl_s=self.cfg.series_ttl_s, initial_capacity=8
        )
        self.state_arr = np.zeros((self.registry.capacity, _WIDTH), dtype=np.float64)
        self.firing = FiringState()

    @property
    def cfg(self) -> FeedbackConfig:
        assert isinstance(self.config, FeedbackConfig)
        return self.config

    @property
    def bytes_per_series(self) -> float:
        return float(self.state_arr.itemsize * _WIDTH)

    def update(self, batch: FeedbackColumns) -> DetectorOutput:
        n = len(batch)
        scores = np.zeros(n, dtype=np.float64)
        if n == 0:
            return DetectorOutput(scores, [])
        cfg = self.cfg
        ts = clean_ts(batch.ts)
        ids = self.registry.ids_for_batch(batch, ("model", "model_version"), ts)
        self.state_arr = grow(self.state_arr, self.registry.capacity, 0.0)
        values = np.clip(batch.score, -1.0, 1.0)
        findings: list[Finding] = []
        for sid, rows in groups(ids):
            st = self.state_arr[sid].tolist()
            s_rows = np.zeros(rows.size)
            for j, x in enumerate(values[rows].tolist()):
                if math.isfinite(x):
                    self._learn(st, x)
                s_rows[j] = st[_S]
            self.state_arr[sid] = st
            scores[rows] = squash(s_rows, cfg.threshold)
            findings.extend(self._finding(sid, st, float(ts[rows].max())))
        self._evict(float(ts.max()))
        return DetectorOutput(scores, findings)

    def _learn(self, st: list[float], x: float) -> None:
        cfg = self.cfg
        e = math.exp(-cfg.tilt * x)
        if st[_N] >= cfg.warmup:
            # Capped, so an episode ends within a bounded number of normal ratings.
            s = st[_S] - cfg.tilt * x - math.log(st[_MGF]) - self._margin(st)
            st[_S] = min(max(0.0, s), 1.5 * cfg.threshold)
            if st[_S] > 0.0:
                st[_RUN_SUM] += x
                st[_RUN_N] += 1
            else:
                st[_RUN_SUM] = st[_RUN_N] = 0.0
        # Warm-up averages plainly, then the baseline moves slowly.
        a = max(cfg.slow_alpha, 1.0 / (st[_N] + 1))
        if st[_S] >= cfg.threshold / 2:
            # Ratings during a decline teach the baseline slowly, so a decline stays
            # visible; a lasting one still becomes normal in time.
            a *= cfg.declined_learning
        st[_MEAN] += a * (x - st[_MEAN])
        st[_MGF] += a * (e - st[_MGF])
        st[_MGF2] += a * (e * e - st[_MGF2])
        st[_N] += 1

    def _margin(self, st: list[float]) -> float:
        """``baseline_margin`` standard errors of log E0[exp(-tilt x)] (delta method)."""
        a = self.cfg.slow_alpha
        n_eff = min(st[_N], (2 - a) / a)
        rel_var = max(st[_MGF2] / (st[_MGF] * st[_MGF]) - 1.0, 0.0)
        return self.cfg.baseline_margin * math.sqrt(rel_var / n_eff)

    def _finding(self, sid: int, st: list[float], ts: float) -> list[Finding]:
        cfg = self.cfg
        s = st[_S]
        # Hysteresis: once firing, the episode lasts until the evidence halves.
        was = sid in self.firing.firing
        anomalous = s >= cfg.threshold or (was and s >= cfg.threshold / 2)
        labels = self.registry.labels(sid)
        who = f"{labels['model']} {labels['model_version']}"
        run_n = int(st[_RUN_N])
        recent = st[_RUN_SUM] / run_n if run_n else st[_MEAN]

        def make(anomalous: bool) -> Finding:
            head = (
                f"user feedback for {who} averaged {fmt(recent)} over the last {run_n} "
                f"ratings against a baseline of {fmt(st[_MEAN])}"
            )
            if anomalous:
                text = f"{head}: a decline, evidence {s:.1f} (threshold {fmt(cfg.threshold)})"
            else:
                text = f"user feedback for {who} is back to normal"
            return Finding(
                detector=self.name,
                kind="feedback.decline",
                series=labels,
                ts=ts,
                # The episode holds (hysteresis) until the evidence halves: it stays hot.
                score=max(float(squash(s, cfg.threshold)), 0.5 if anomalous else 0.0),
                anomalous=anomalous,
                observed=recent,
                expected=st[_MEAN],
                lower=None,
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
