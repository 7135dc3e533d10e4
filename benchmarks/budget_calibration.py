"""Does the alert budget hold? False alerts per series-week on series with nothing wrong.

The ``series`` detector's firing threshold is set from each series' own tails to
``false_alerts_per_series_week`` (default 0.5). This feeds it synthetic series of the
shapes real metrics take (Gaussian, heavy-tailed, bursty, trending, daily-seasonal,
weekly, days that differ in shape, strongly autocorrelated, low counts), with no anomaly
in them, at 5-minute, 15-second and hourly sampling intervals, and counts the episodes
it opens: each one would be a false page: per series-week scored, i.e. after the warm-up
(hourly series run 3.25x longer, as their warm-up alone is 2.4 weeks). The pages of the
young stretch before the warm-up ends (where only a value far beyond a series' whole
range pages) are counted apart, per series-week of that stretch. One JSON object out;
the ratio to the budget is the figure to read.

    .venv/bin/python -m benchmarks.budget_calibration [--weeks 8] [--seeds 6] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.kernels.robust_layout import YOUNG_FROM
from detectors.series import SeriesConfig, SeriesDetector
from schemas.columns import MetricColumns, series_key

F64 = npt.NDArray[np.float64]
# Hourly series run this much longer: their warm-up alone (400 rows) is 2.4 weeks.
WEEKS_FACTOR = {3600.0: 3.25}
Maker = Callable[[np.random.Generator, int, float], F64]
T0 = 1.7e9
DAY_S = 86400.0
WEEK_S = 7 * DAY_S


def _weekly_shape(rng: np.random.Generator, n: int, period: float) -> F64:
    """Days that differ in shape: weekdays with a morning and an evening rush, weekends
    (UTC) with a busy night and a quiet morning (a city's taxi rides, a web service's
    traffic), the one turning into the other over Friday and Sunday nights, with 6%
    multiplicative noise."""
    t = T0 + np.arange(n) * period
    h = (t % DAY_S) / 3600.0
    # Days since Monday 00:00; weekend-ness ramps up 20:00-02:00 into Saturday and down
    # 20:00-02:00 into Monday. Monday's first two hours are read as day 7, the end of
    # that ramp: read as day 0 they put the level back at a weekday's in one row at
    # Monday midnight (a third of the level, 5 noise sds, every week; until 2026-12-08).
    d = ((np.floor(t / DAY_S) + 3) % 7) + h / 24.0
    d = np.where(d < 2 / 24, d + 7.0, d)
    w = np.clip((d - (4 + 20 / 24)) * 4.0, 0.0, 1.0) * np.clip((7 + 2 / 24 - d) * 4.0, 0.0, 1.0)
    out: F64 = week_of_two_shapes(h, w) * rng.lognormal(0.0, 0.06, n)
    return out


def week_of_two_shapes(
    h: npt.NDArray[np.floating[Any]], weekend: npt.NDArray[np.floating[Any]]
) -> F64:
    """The ``weekly_shape`` level at hour of day ``h`` and weekend-ness ``weekend`` (0 on
    a weekday, 1 at the weekend): a morning and an evening rush, or a busy night and a
    quiet morning."""
    night = np.minimum(np.abs(h - 1.0), 24.0 - np.abs(h - 1.0))
    ends = 120.0 + 90.0 * np.exp(-(night**2) / 8) + 80.0 * np.exp(-((h - 14) ** 2) / 18)
    days = (
        90.0
        + 140.0 * np.exp(-((h - 8.5) ** 2) / 3)
        + 120.0 * np.exp(-((h - 19) ** 2) / 5)
        - 70.0 * np.exp(-((h - 4) ** 2) / 3)
    )
    out: F64 = (1.0 - weekend) * days + weekend * ends
    return out


def _ar1(rng: np.random.Generator, n: int, period: float) -> F64:
    e = rng.normal(0.0, 1.0, n)
    x = np.empty(n)
    x[0] = 0.0
    for i in range(1, n):
        x[i] = 0.95 * x[i - 1] + e[i]
    return x + 100.0


FAMILIES: dict[str, Maker] = {
    "gaussian": lambda rng, n, p: rng.normal(50.0, 1.0, n),
    "heavy_tailed_t2.5": lambda rng, n, p: rng.standard_t(2.5, n) * 3.0 + 50.0,
    "bursty": lambda rng, n, p: np.where(rng.random(n) < 0.05, rng.lognormal(3.0, 1.0, n), 0.0),
    "trending": lambda rng, n, p: 100.0 + 3.0 * np.arange(n) * p / DAY_S + rng.normal(0, 2, n),
    "daily_sine": lambda rng, n, p: (
        100.0 + 30.0 * np.sin(2 * np.pi * np.arange(n) * p / DAY_S) + rng.normal(0, 3, n)
    ),
    "weekly": lambda rng, n, p: (  # the daily sine, Saturdays and Sundays (UTC) 40 lower
        100.0
        + 30.0 * np.sin(2 * np.pi * np.arange(n) * p / DAY_S)
        - 40.0 * ((np.floor((T0 + np.arange(n) * p) / DAY_S) + 3) % 7 >= 5)
        + rng.normal(0, 3, n)
    ),
    "weekly_shape": _weekly_shape,
    "autocorrelated_ar1": _ar1,
    "low_counts_poisson2": lambda rng, n, p: rng.poisson(2.0, n).astype(np.float64),
}


def _columns(t: F64, v: F64) -> MetricColumns:
    n = t.size
    name = np.full(n, "bench", dtype=object)
    key = np.full(n, series_key("bench", {}), dtype=object)
    labels = np.empty(n, dtype=object)
    labels[:] = [{}] * n
    return MetricColumns(ts=t, name=name, series=key, labels=labels, value=v)


def onsets(values: F64, period_s: float, batch: int = 256) -> list[int]:
    """The rows where the detector opens an episode (an alert onset) on one series."""
    det = SeriesDetector()
    t: F64 = T0 + period_s * np.arange(values.size, dtype=np.float64)
    opened: list[int] = []
    prev = False
    for i in range(0, values.size, batch):
        out = det.update(_columns(t[i : i + batch], values[i : i + batch]))
        for f in out.findings:
            if f.anomalous and not prev:
                opened.append(round((f.ts - T0) / period_s))
            prev = f.anomalous
    return opened


def episodes(values: F64, period_s: float, batch: int = 256) -> int:
    """Episodes (alert onsets) the detector opens on one series."""
    return len(onsets(values, period_s, batch))


def young_rows(cfg: SeriesConfig, period_s: float) -> tuple[int, int]:
    """The rows of a series' young stretch: from a quarter of the warm-up and a day
    (``detectors.kernels.robust_layout.YOUNG_FROM``) to the end of the warm-up."""
    first = max(math.ceil(YOUNG_FROM * cfg.warmup_samples), math.ceil(DAY_S / period_s))
    return min(first, cfg.warmup_samples), cfg.warmup_samples


def run(weeks: float, seeds: int, periods: tuple[float, ...]) -> dict[str, Any]:
    cfg = SeriesConfig()
    budget = cfg.alert_budget.false_alerts_per_series_week
    rows: list[dict[str, Any]] = []
    began = time.perf_counter()
    for period in periods:
        span = weeks * WEEKS_FACTOR.get(period, 1.0)
        n = int(span * WEEK_S / period)
        # Rates are per scored week: the warm-up's rows are learned, and only the
        # young stretch's are scored (by the young test alone), so it is counted apart.
        scored = seeds * max(n - cfg.warmup_samples, 0) * period / WEEK_S
        y0, y1 = young_rows(cfg, period)
        young = seeds * max(min(y1, n) - y0, 0) * period / WEEK_S
        for name, make in FAMILIES.items():
            rows_at = [
                i
                for s in range(seeds)
                for i in onsets(make(np.random.default_rng(1000 + s), n, period), period)
            ]
            count = sum(i >= cfg.warmup_samples for i in rows_at)
            per_week = count / scored if scored > 0 else 0.0
            rows.append(
                {
                    "family": name,
                    "period_s": period,
                    "series_weeks": round(scored, 3),
                    "false_alerts": count,
                    "per_series_week": round(per_week, 3),
                    "vs_budget": round(per_week / budget, 2),
                    "young_series_weeks": round(young, 3),
                    "young_false_alerts": len(rows_at) - count,
                }
            )
    return {
        "budget_per_series_week": budget,
        "families": rows,
        **_overall(rows, budget),
        "elapsed_s": round(time.perf_counter() - began, 1),
    }


def _overall(rows: list[dict[str, Any]], budget: float) -> dict[str, Any]:
    total = sum(r["false_alerts"] for r in rows)
    weeks_all = max(sum(r["series_weeks"] for r in rows), 1e-9)
    young = sum(r["young_false_alerts"] for r in rows)
    young_weeks = max(sum(r["young_series_weeks"] for r in rows), 1e-9)
    return {
        "overall_per_series_week": round(total / weeks_all, 3),
        "overall_vs_budget": round(total / weeks_all / budget, 2),
        "worst_vs_budget": max(r["vs_budget"] for r in rows),
        "young_false_alerts": young,
        "young_per_series_week": round(young / young_weeks, 3),
        "young_vs_budget": round(young / young_weeks / budget, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weeks", type=float, default=8.0, help="weeks per series")
    ap.add_argument("--seeds", type=int, default=6, help="series per family and interval")
    ap.add_argument("--quick", action="store_true", help="1 week, 1 seed")
    args = ap.parse_args(argv)
    weeks, seeds = (1.0, 1) if args.quick else (args.weeks, args.seeds)
    out = run(weeks, seeds, (300.0, 15.0, 3600.0))
    sys.stdout.write(json.dumps(out) + "\n")
    for r in out["families"]:
        sys.stdout.write(
            f"{r['family']:22s} {r['period_s']:5.0f} s  {r['per_series_week']:.2f}/series-week "
            f"({r['vs_budget']:.2f}x budget); young {r['young_false_alerts']} in "
            f"{r['young_series_weeks']:.2f} series-weeks\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
