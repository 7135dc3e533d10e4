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
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from detectors._tracking import FiringState, clean_ts, fmt, groups
from detectors.base import (
    Detector,
    DetectorConfig,
    DetectorOutput,
    Finding,
    Migration,
    squash,
)
from detectors.registry import Column, SeriesState
from schemas.columns import FeedbackColumns

_LABELS = ("model", "model_version")
# Per series: baseline mean score, baseline E[exp(-tilt x)] and E[exp(-2 tilt x)], the
# CUSUM, ratings seen, and the sum and count of ratings since the CUSUM last stood at 0
# (the run it adds up).
_COLUMNS = {name: Column(0.0) for name in ("mean", "mgf", "s", "n", "run_sum", "run_n", "mgf2")}


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
    # 2, not 1: judged at every rating (not once per batch) the CUSUM meets more of the
    # baseline's luck; 1 paged on 6 of 20 ordinary streams after a lucky warm-up.
    baseline_margin: float = Field(
        2.0,
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


def _from_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """State version 1 kept a (series x 7) matrix with named row constants."""
    state = dict(payload["state"])
    old = np.asarray(state.pop("state_arr"))
    st = SeriesState(_LABELS, _COLUMNS, ttl_s=1.0)
    st.adopt(state.pop("registry"), {n: old[:, i] for i, n in enumerate(_COLUMNS)})
    state["st"] = st
    return {**payload, "state": state}


class FeedbackDetector(Detector[FeedbackColumns, FeedbackConfig]):
    name: ClassVar[str] = "feedback"
    consumes: ClassVar[type[FeedbackColumns]] = FeedbackColumns
    Config: ClassVar[type[DetectorConfig]] = FeedbackConfig
    state_version: ClassVar[int] = 2
    state_migrations: ClassVar[Mapping[int, Migration]] = {1: _from_v1}
    row_findings: ClassVar[bool] = True

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.st = SeriesState(_LABELS, _COLUMNS, ttl_s=self.cfg.series_ttl_s)
        self.firing = FiringState()

    @property
    def bytes_per_series(self) -> float:
        return float(self.st.bytes_per_series())

    def update(self, batch: FeedbackColumns) -> DetectorOutput:
        n = len(batch)
        scores = np.zeros(n, dtype=np.float64)
        if n == 0:
            return DetectorOutput(scores, [])
        cfg = self.cfg
        ts = clean_ts(batch.ts)
        ids = self.st.ids(batch, ts)
        values = np.clip(batch.score, -1.0, 1.0)
        findings: list[Finding] = []
        arrays = self.st.arrays
        for sid, rows in groups(ids):
            v = {name: float(arr[sid]) for name, arr in arrays.items()}
            s_rows = np.zeros(rows.size)
            # Row by row in event time, each judged as it lands (row_findings): a decline
            # is reported at the rating that crossed, whatever the batch holds after it.
            rows = rows[np.argsort(ts[rows], kind="stable")]
            for j, (x, t) in enumerate(zip(values[rows].tolist(), ts[rows].tolist(), strict=True)):
                if math.isfinite(x):
                    self._learn(v, x)
                s_rows[j] = v["s"]
                findings.extend(self._finding(sid, v, t))
            for name, arr in arrays.items():
                arr[sid] = v[name]
            scores[rows] = squash(s_rows, cfg.threshold)
        self.firing.forget_series(self.st.evict(float(ts.max())), at=None)
        return DetectorOutput(scores, findings)

    def _learn(self, v: dict[str, float], x: float) -> None:
        cfg = self.cfg
        e = math.exp(-cfg.tilt * x)
        if v["n"] >= cfg.warmup:
            # Capped, so an episode ends within a bounded number of normal ratings.
            s = v["s"] - cfg.tilt * x - math.log(v["mgf"]) - self._margin(v)
            v["s"] = min(max(0.0, s), 1.5 * cfg.threshold)
            if v["s"] > 0.0:
                v["run_sum"] += x
                v["run_n"] += 1
            else:
                v["run_sum"] = v["run_n"] = 0.0
        # Warm-up averages plainly, then the baseline moves slowly.
        a = max(cfg.slow_alpha, 1.0 / (v["n"] + 1))
        if v["s"] >= cfg.threshold / 2:
            # Ratings during a decline teach the baseline slowly, so a decline stays
            # visible; a lasting one still becomes normal in time.
            a *= cfg.declined_learning
        v["mean"] += a * (x - v["mean"])
        v["mgf"] += a * (e - v["mgf"])
        v["mgf2"] += a * (e * e - v["mgf2"])
        v["n"] += 1

    def _margin(self, v: dict[str, float]) -> float:
        """``baseline_margin`` standard errors of log E0[exp(-tilt x)] (delta method)."""
        a = self.cfg.slow_alpha
        n_eff = min(v["n"], (2 - a) / a)
        rel_var = max(v["mgf2"] / (v["mgf"] * v["mgf"]) - 1.0, 0.0)
        return self.cfg.baseline_margin * math.sqrt(rel_var / n_eff)

    def _finding(self, sid: int, v: dict[str, float], ts: float) -> list[Finding]:
        cfg = self.cfg
        s = v["s"]
        # Hysteresis: once firing, the episode lasts until the evidence halves.
        was = sid in self.firing.firing
        verdict = self.firing.step(sid, s >= cfg.threshold or (was and s >= cfg.threshold / 2))
        if verdict is None:
            return []
        labels = self.st.labels(sid)
        who = f"{labels['model']} {labels['model_version']}"
        run_n = int(v["run_n"])
        recent = v["run_sum"] / run_n if run_n else v["mean"]
        text = f"user feedback for {who} is back to normal"
        if verdict:
            text = (
                f"user feedback for {who} averaged {fmt(recent)} over the last {run_n} "
                f"ratings against a baseline of {fmt(v['mean'])}: a decline, evidence "
                f"{s:.1f} (threshold {fmt(cfg.threshold)})"
            )
        return [
            self.finding(
                "feedback.decline",
                labels,
                ts,
                # The episode holds (hysteresis) until the evidence halves: it stays hot.
                max(float(squash(s, cfg.threshold)), 0.5 if verdict else 0.0),
                verdict,
                observed=recent,
                expected=v["mean"],
                explanation=text,
            )
        ]
