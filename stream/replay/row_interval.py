"""CSV timestamps that are row numbers (1, 2, 3, ...): how far apart their rows are.

Some public anomaly sets number their rows instead of timing them. Read as epoch
seconds, a row number makes any series a one-second stream: its alert budget (per
series-week) would allow one false alert in 1.2 million rows, and `for: 30s` would need
30 rows, so a spike of a few rows, or any change in a short file, never paged.

The values say how far apart the rows are where they hold a daily cycle, as most
operations metrics do: a cycle of 24 rows is hourly, 288 rows five-minutely
(``daily_rows``). Without one, rows are read 5 minutes apart (the commonest scrape and
CloudWatch period). ``--row-interval`` says otherwise (``1s`` keeps the seconds reading).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import numpy.typing as npt

from schemas.durations import duration_arg

log = logging.getLogger("llmwatch.replay")
F64 = npt.NDArray[np.float64]
DAY_S = 86400.0
# Epoch seconds below this are before March 1973: no metric was scraped then, so such a
# column counts from some start of its own (row numbers, or seconds since a start).
ROW_NUMBERS_BELOW = 1e8
ROW_INTERVAL_S = 300.0  # where the values hold no daily cycle
# Rows a day at the sampling intervals metrics are kept at: 1 hour, 30, 15, 10, 5, 1 min.
DAILY_ROWS = (24, 48, 96, 144, 288, 1440)
# A daily cycle of L rows: the values L rows apart correlate at least CYCLE_ACF and at
# least CYCLE_CONTRAST more than those L / 2 apart (a smooth series without a cycle
# correlates about as well at both lags); day against night, L / 2 apart, correlate at
# most HALF_ACF and at least QUARTER_GAP less than L / 4 apart (a job that runs 20
# minutes every 2 hours repeats every 24 rows too, but its rows an hour apart are no more
# out of phase than those half an hour apart); and 2 L rows apart correlate at most
# DOUBLE_GAP more than L apart (two rushes a day repeat every 12 hours, less well than
# every 24: the day is the longer).
CYCLE_ACF, CYCLE_CONTRAST, HALF_ACF, QUARTER_GAP, DOUBLE_GAP = 0.3, 0.4, -0.1, 0.3, 0.1
CYCLES_NEEDED = 3  # whole cycles the values must span to show one


def row_numbers(ts: F64) -> bool:
    """Whole numbers before 1973 as epoch seconds, mostly one apart. Seconds counted
    from a start of their own (0, 300, 600, ...) are not row numbers."""
    if not ts.size or float(ts.max()) >= ROW_NUMBERS_BELOW or np.any(ts != np.round(ts)):
        return False
    steps = np.diff(np.sort(ts))
    steps = steps[steps > 0]
    return bool(steps.size) and float(np.median(steps)) == 1.0


def _acf(x: F64, lag: int) -> float:
    a, b = x[:-lag], x[lag:]
    sa, sb = float(a.std()), float(b.std())
    if sa <= 0.0 or sb <= 0.0:
        return 0.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def daily_rows(values: F64) -> int | None:
    """The rows a day holds, from a daily cycle in ``values`` (in row order): the
    candidate of ``DAILY_ROWS`` with the clearest cycle, or None where none shows.
    Values are clipped at their 1st and 99th percentiles (a spike would dominate the
    correlations) and a straight trend is taken out (it correlates every lag)."""
    x = values[np.isfinite(values)]
    if x.size < CYCLES_NEEDED * DAILY_ROWS[0]:
        return None
    lo, hi = np.percentile(x, [1.0, 99.0])
    x = np.clip(x, lo, hi)
    i = np.arange(x.size, dtype=np.float64)
    x = x - np.polyval(np.polyfit(i, x, 1), i)
    lags = [r for r in DAILY_ROWS if x.size >= CYCLES_NEEDED * r]
    needed = {lag for r in lags for lag in (r, r // 2, r // 4, 2 * r) if lag < x.size}
    acf = {lag: _acf(x, lag) for lag in needed}
    # Repeating every r rows, whether or not day against night.
    repeats = {r for r in lags if acf[r] >= CYCLE_ACF and acf[r] - acf[r // 2] >= CYCLE_CONTRAST}
    best, found = 0.0, None
    for r in sorted(repeats):
        half = acf[r // 2]
        day_night = half <= HALF_ACF and half <= acf[r // 4] - QUARTER_GAP
        # A multiple of a shorter cycle repeats too (3 days of a 30-minute series' day):
        # the shorter one is the series' own; a cycle that repeats better at twice its
        # length is half of one.
        harmonic = any(r % q == 0 for q in repeats if q < r)
        half_of_one = acf.get(2 * r, -1.0) > acf[r] + DOUBLE_GAP
        if day_night and not harmonic and not half_of_one and acf[r] - half > best:
            best, found = acf[r] - half, r
    return found


def row_scale(ts: F64, values: F64, row_interval_s: float | None) -> tuple[float | None, str]:
    """Seconds per unit of a timestamp column, and what set them: None where the column
    is not row numbers (seconds, as they are); else ``row_interval_s`` where told, or a
    day over the rows of a daily cycle in ``values`` (in the column's order), or
    ``ROW_INTERVAL_S``."""
    if not row_numbers(ts):
        return None, ""
    if row_interval_s is not None:
        return row_interval_s, "as told"
    rows = daily_rows(values[np.argsort(ts, kind="stable")])
    if rows is None:
        return ROW_INTERVAL_S, "no daily cycle in the values"
    return DAY_S / rows, f"a daily cycle every {rows} rows"


def warn_own_start(source: str, ts: F64, scale: float | None, how: str) -> None:
    """Say how a timestamp column that is not epoch time was read: row numbers at
    ``scale`` seconds a row (``how``: what set it, from ``row_scale``), or seconds from
    a start of their own (``scale`` None)."""
    if not ts.size or float(ts.max()) >= ROW_NUMBERS_BELOW:
        return
    lo, hi = float(ts.min()), float(ts.max())
    if scale is None:
        log.warning(
            "%s: timestamps run %g to %g, before 1973 as epoch seconds: read as seconds "
            "from a start of their own",
            source,
            lo,
            hi,
        )
        return
    log.warning(
        "%s: timestamps %g to %g are row numbers: read as one row every %gs (%s; "
        "--row-interval says otherwise; write real times to give the interval)",
        source,
        lo,
        hi,
        scale,
        how,
    )


def add_row_interval(parser: argparse.ArgumentParser) -> None:
    """The ``--row-interval`` option of every command that reads CSV series."""
    parser.add_argument(
        "--row-interval",
        type=duration_arg,
        default=None,
        metavar="DURATION",
        help="how far apart the rows of a CSV are whose timestamps are row numbers "
        "(1, 2, 3, ...); 1s reads them as seconds (default: a day over the rows of a "
        "daily cycle in the values, 24 rows: hourly, 288: 5m; else 5m)",
    )
