"""Generic numeric series: any scraped or replayed metric, judged against its own history.

Per series (``detectors.kernels.robust_series`` has the per-row step):

* robust location and scale: a Huber-clipped exponentially weighted level and mean
  absolute deviation, so one wild point moves neither;
* a daily profile (``profile_slots`` slots, level and scale per slot) learned online
  and used only while its residuals are clearly smaller than the plain level's, and
  weekday offsets (from day means, against a Holt-Winters style weekly level) used
  once they explain at least half of the day-to-day spread after two weeks, added to
  the profile or, without one, to the plain level where the day turns: seasonality is
  detected, not assumed;
* a likelihood-style score in the spirit of HTM's anomaly likelihood: the point
  statistic ``log1p(|z|)``, its short moving average (is the recent window unusual?),
  the share of recent rows beyond the point tail (bursts denser or longer than usual)
  and, without a profile, the drift of the level from its slow average, each against
  a streaming extreme-value tail of the series' own history (``detectors.budget``);
  and novelty: how far a value goes beyond the envelope of the residuals of the last
  couple of weeks (a spike past anything the series has lately shown is news even on
  a spiky series whose point tail has learned its ordinary spikes); and a value stuck
  for longer than the series ever repeats one (a hung exporter, a frozen gauge), which
  no size statistic sees (``detectors.kernels.flat``); and, without a profile, how far
  the value is from the nearest of the series' last ``nearest_samples`` values (a
  level between two usual modes, the first rows of a new level: values the series has
  not taken lately, even within its spread; ``detectors.kernels.nearest``);
  the score is 0.5 exactly where the rarest of them, corrected for testing several,
  meets the alert budget (``false_alerts_per_series_week``, default 0.5, overridable
  per series label); a series that used more than its budget lately gets stricter;
* the firing decision is the detector's own: an episode starts at the first row at
  or over 0.5 and ends after ``clear_after_samples`` rows under it, so a burst is one
  finding; after ``rebase_after_samples`` rows a lasting change becomes the new
  baseline (one alert per level shift) and learning resumes;
* a gap of more than ``gap_factor`` sampling intervals (and an hour) re-anchors the
  level instead of alerting on whatever the series restarted at.

State (one ``SeriesState``, a row per series; its layout and migrations are in
``detectors._series_state``): ``SERIES_COLUMNS`` floats, a ``2 * profile_slots`` float32
profile, 7 weekday offsets, nine tails of ``TAIL_COLUMNS`` floats and the rows of the
two pools it borrowed (1,328 bytes at the default 48 slots). A series whose
``nearest_samples`` rows span ``nearest_span_s`` (a 5-minute series, not a 15-second
one) borrows a ring of its last values in float32 from ``rings`` (8,064 bytes more at
the default 2,016; 0 turns the statistic off), and one whose daily profile has come into
use a weekly profile from ``weeks`` (1,344 bytes more;
``detectors.kernels.week_shape``). The kernel takes the arrays transposed (one column
per series), as views, but for the pools (a row per borrower, so each is contiguous).
The first ``warmup_samples`` rows of a series are learned before its statistics are
scored; from a quarter of them, once it has run a day, a young series pages only on a
value ``young_reach`` widths of its whole range beyond that range
(``detectors.kernels.robust_channels.young_channel``): its tails cannot yet say how rare
a value is, but a new series is not blind to a jump for its first days.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import Field

from detectors._series_state import MIGRATIONS, NEAREST_SAMPLES, RingPool, WeekPool, columns
from detectors._tracking import FiringState, clean_ts, fmt, groups
from detectors.base import Detector, DetectorConfig, DetectorOutput, Finding, Migration
from detectors.budget import WEEK_S, BudgetedConfig
from detectors.kernels import robust_layout as k
from detectors.kernels.robust_series import series_step
from detectors.registry import SeriesState
from schemas.columns import MetricColumns

F64 = npt.NDArray[np.float64]
# The kernel's per-row outputs a finding is built from: score, expected, how far down
# and up a value may go before it pages by itself, and which statistic was most unusual.
_Rows = tuple[F64, F64, F64, F64, F64]


class SeriesConfig(BudgetedConfig):
    warmup_samples: int = Field(
        400,
        ge=10,
        description="Rows a series learns from before its statistics are scored (before "
        "that, from a quarter of them, only young_reach can page).",
    )
    young_reach: float = Field(
        3.0,
        ge=0,
        description="While a series is young (from a quarter of warmup_samples rows and a "
        "day, to the end of the warm-up), a value pages only if it lands this many widths of "
        "the series' whole range of values beyond that range; 0: a young series never pages.",
    )
    window_samples: float = Field(
        10.0, ge=1, description="Rows in the recent window the likelihood score averages over."
    )
    level_samples: float = Field(
        32.0, ge=2, description="Memory of the robust level, in rows (the scale remembers 2x)."
    )
    rebase_after_samples: int = Field(
        12,
        ge=1,
        description="Rows a shift must hold (beyond 3 scales) before it becomes the new baseline.",
    )
    clear_after_samples: int = Field(
        3, ge=1, description="Consecutive rows scoring under 0.5 that end an anomaly episode."
    )
    gap_factor: float = Field(
        12.0,
        gt=1,
        description="A gap of this many sampling intervals (and an hour) re-anchors the level.",
    )
    profile_slots: int = Field(
        48, ge=12, le=288, description="Slots of the daily profile (48 = half-hour slots)."
    )
    profile_days: float = Field(
        3.0, gt=0, description="How many days of its own time one profile slot remembers."
    )
    seasonal_ratio: float = Field(
        0.7,
        gt=0,
        lt=1,
        description="The daily profile is used while its residuals are below this share of "
        "the plain level's (seasonality detected, not assumed).",
    )
    series_ttl_s: float = Field(
        7 * 86400.0, gt=0, description="A series with no data for this long is forgotten."
    )
    nearest_samples: int = Field(
        NEAREST_SAMPLES,
        ge=0,
        le=20160,
        description="Last values kept for the nearest-value statistic (a value far from all "
        "of them is unusual), by the series whose rows can span nearest_span_s: 4 bytes "
        "each; 0 turns the statistic off.",
    )
    nearest_span_s: float = Field(
        WEEK_S,
        gt=0,
        description="The nearest-value statistic is scored only on series whose "
        "nearest_samples rows can span this much time, once they do (a week: the weekly "
        "pattern is in the history).",
    )


class SeriesDetector(Detector[MetricColumns, SeriesConfig]):
    name: ClassVar[str] = "series"
    consumes: ClassVar[type[MetricColumns]] = MetricColumns
    Config: ClassVar[type[DetectorConfig]] = SeriesConfig
    # Version 1 kept an EWMA mean/variance and CUSUM sums, which nothing here can start
    # from: no migration, so an engine restoring a version-1 snapshot starts this detector
    # fresh (Engine.fresh_detectors) and its series warm up again (``warmup_samples``).
    state_version: ClassVar[int] = 15
    state_migrations: ClassVar[Mapping[int, Migration]] = MIGRATIONS
    row_findings: ClassVar[bool] = True  # a finding per episode row, at the row's time

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.series = SeriesState(
            ("series",), columns(self.cfg.profile_slots), ttl_s=self.cfg.series_ttl_s
        )
        self.rings = RingPool(self.cfg.nearest_samples)
        self.weeks = WeekPool()
        self.firing = FiringState()

    @property
    def st(self) -> F64:
        """The per-series scalars, one column per series (``k.S_*`` rows), as a view."""
        out: F64 = self.series.st.T
        return out

    @property
    def bytes_per_series(self) -> float:
        """The per-series arrays, and the pools shared out over the series."""
        pool = (self.rings.hv.nbytes + self.weeks.hv.nbytes) / max(len(self.series), 1)
        return float(self.series.bytes_per_series()) + pool

    def _params(self) -> F64:
        c = self.cfg
        return np.array(
            [
                1.0 / c.level_samples,  # level
                1.0 / (2.0 * c.level_samples),  # scale
                1.0 / c.window_samples,  # recent window
                0.02,  # tail quantile: the top 2% of each statistic are its peaks
                1.0 / 5000.0,  # exceedance-rate memory, rows
                1.0 / 200.0,  # peak-moment memory, peaks
                float(c.warmup_samples),
                float(c.rebase_after_samples),
                float(c.clear_after_samples),
                c.gap_factor,
                c.profile_days,
                c.seasonal_ratio,
                1.0,  # drift channel on
                1.0,  # alert-rate feedback on
                0.0,  # window of clipped u
                c.seasonal_ratio + 0.1,  # profile dropped above this residual ratio
                3.0,  # scale update clip, in scales
                2.0,  # alert-rate feedback exponent
                0.75,  # Bonferroni weight: n ** 0.75 (see docs/series-detector.md)
                1.0 / 36.0,  # burst-density window (0 = off)
                2.0 * WEEK_S,  # residual-envelope memory, seconds (0 = novelty channel off)
                c.nearest_span_s,  # time the nearest-value ring must span to be scored
                c.young_reach,  # a young series pages this many range widths beyond its range
            ]
        )

    def update(self, batch: MetricColumns) -> DetectorOutput:
        n = len(batch)
        if n == 0:
            return DetectorOutput(np.zeros(0), [])
        ts = clean_ts(batch.ts)
        ids = self.series.ids_for((batch.series,), ts)
        st = self.st
        fresh = ids[st[k.S_N, ids] < 1.0]
        for sid in np.unique(fresh).tolist():
            row = int(np.flatnonzero(ids == sid)[0])
            st[k.S_BUDGET, sid] = self.cfg.budget_for(self._labels(batch, row))
        x = np.asarray(batch.value, dtype=np.float64)
        was_in = st[k.S_EP_LEN] > 0.0  # per series, before this batch
        peak0 = st[k.S_EP_PEAK].copy()
        s, pool, weeks = self.series, self.rings, self.weeks
        pool.reserve(pool.borrowers(s.st, s.ring, ids, ts, self.cfg.nearest_span_s))
        weeks.reserve(weeks.borrowers(s.st, s.week, ids, ts))
        score, expected, down, up, episode, why = series_step(
            ids, ts, x, st, s.pl.T, s.ps.T, s.pw.T, weeks.hv, s.week, weeks.free,
            weeks.n_free, s.tails.T, pool.hv, s.ring, pool.free, pool.n_free, self._params(),
        )  # fmt: skip
        out = (score, expected, down, up, why)
        findings: list[Finding] = []
        for sid, rows in groups(ids):
            peak = float(peak0[sid]) if was_in[sid] else 0.0
            in_ep = bool(was_in[sid])
            # Each row is reported as a batch of that row alone would be (row_findings):
            # rows outside an episode say nothing unless they end one.
            for r in rows[episode[rows] != 0.0].tolist():
                peak = max(peak, float(score[r])) if in_ep else float(score[r])
                in_ep = episode[r] == 1.0
                f = self._finding(sid, batch, ts, r, in_ep, peak, out)
                if f is not None:
                    findings.append(f)
        self._evict(float(ts.max()))
        return DetectorOutput(np.clip(np.nan_to_num(score), 0.0, 1.0), findings)

    @staticmethod
    def _labels(batch: MetricColumns, row: int) -> dict[str, str]:
        return {"series": str(batch.series[row]), **dict(batch.labels[row])}

    def _finding(
        self,
        sid: int,
        batch: MetricColumns,
        ts: F64,
        row: int,
        ongoing: bool,
        peak: float,
        out: _Rows,
    ) -> Finding | None:
        interval = float(self.st[k.S_DT, sid])

        def make(anomalous: bool) -> Finding:
            return self._build(batch, ts, row, anomalous, peak, out, interval)

        return self.firing.report(sid, ongoing, make)

    def _build(
        self,
        batch: MetricColumns,
        ts: F64,
        row: int,
        anomalous: bool,
        peak: float,
        out: _Rows,
        interval: float,
    ) -> Finding:
        _, expected, down, up, why = out
        labels = self._labels(batch, row)
        observed = float(batch.value[row])
        exp = float(expected[row]) if np.isfinite(expected[row]) else None
        # How far the value may go either way before it pages by itself (a side the
        # kernel does not state is None).
        lo = exp - float(down[row]) if exp is not None and np.isfinite(down[row]) else None
        hi = exp + float(up[row]) if exp is not None and np.isfinite(up[row]) else None
        reason = _REASONS.get(float(why[row])) if anomalous else None
        text = explain(
            str(batch.name[row]), labels["series"], observed, exp, lo, hi, anomalous, reason
        )
        return Finding(
            detector=self.name,
            kind="series.level",
            series=labels,
            ts=float(ts[row]),
            score=max(peak, 0.5) if anomalous else 0.0,
            anomalous=anomalous,
            observed=observed if np.isfinite(observed) else None,
            expected=exp,
            lower=lo,
            upper=hi,
            severity="warning",  # one severity per episode, firing or resolved
            explanation=text,
            # A 10-minute or hourly series' alert must not time out waiting for its
            # second sample (the lifecycle would learn the interval only from it).
            interval_s=interval if interval > 0.0 else None,
        )

    def _evict(self, now: float) -> None:
        gone = self.series.evict(now)
        if gone:
            self.firing.forget(lambda key: key in gone)
            self.rings.reclaim(self.series.ring)
            self.weeks.reclaim(self.series.week)


# What made a row unusual, by the statistic its score came from (``k.WHY_*``): the part
# of a page that says why when the value itself is within its range.
_REASONS: dict[float, str] = {
    k.WHY_POINT: "this value is unusually far from expected",
    k.WHY_WINDOW: "its recent values have stayed unusually far from expected",
    k.WHY_DRIFT: "its level has drifted unusually far from where it usually sits",
    k.WHY_DENSITY: "outliers have come unusually often lately",
    k.WHY_NOVEL: "it is past anything it did in about the last two weeks",
    k.WHY_FLAT: "it has repeated the same value for longer than it ever does (stuck or stale?)",
    k.WHY_NEAR: "it is unusually far from every value it took lately",
    k.WHY_YOUNG: "it is far beyond every value this new series has taken",
}


def _bounds(lo: float | None, hi: float | None) -> str:
    """The range as the text states it after "its expected range": " 1 to 3", or one
    side (", up to 3") where the other is not stated."""
    if lo is not None and hi is not None:
        return f" {fmt(lo)} to {fmt(hi)}"
    if hi is not None:
        return f", up to {fmt(hi)}"
    return f", from {fmt(lo)}" if lo is not None else ""


def explain(
    name: str,
    series: str,
    observed: float,
    expected: float | None,
    lo: float | None,
    hi: float | None,
    anomalous: bool,
    reason: str | None = None,
) -> str:
    """The finding's text, from the same numbers as its observed value and bounds: it says
    "above"/"below" only when the value is outside [lo, hi], and, when it is not, what
    else was unusual (``reason``). A bound that is None is not stated ("up to hi")."""
    if expected is None or (lo is None and hi is None):
        if not anomalous:
            return f"{name} at {fmt(observed)} is back to normal for {series}"
        exp = f" (expected {fmt(expected)})" if expected is not None else ""
        why = f": {reason}" if reason else ""
        return f"{name} at {fmt(observed)} is unusual for {series}{exp}{why}"
    above = hi is not None and observed > hi
    side = "above" if above else "below" if lo is not None and observed < lo else "within"
    text = (
        f"{name} at {fmt(observed)} is {side} its expected range{_bounds(lo, hi)}"
        f" (expected {fmt(expected)})"
    )
    if not anomalous:
        return f"{text}; no longer anomalous for {series}"
    if side != "within":
        return f"{text} for {series}"
    alone = reason is None or reason == _REASONS[k.WHY_POINT]
    return f"{text} for {series}, but {'its recent values are unusual' if alone else reason}"
