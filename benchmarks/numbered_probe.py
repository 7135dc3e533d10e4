"""Labelled probes numbered by row: hourly series whose CSVs give row numbers (1, 2, 3,
...) instead of times, as some public anomaly sets ship theirs. What the replay must
read from the values (``stream/replay/row_interval.py``): a daily cycle of 24 rows.

Each series: 1,400-1,700 hourly rows, a daily sine of random strength (some too weak
to show), noise, a slight trend, and 1-4 labelled anomalies after the first 15% of
rows (a spike, a dip of a few rows, or a short shift up). ``--anomalies 8-20`` gives
each series that many instead (about 7% of its rows anomalous): what a detector whose
tails learn the anomalies it does not page makes of a series where they are common.
Without a folder, writes them to a temporary one and scores them as
``benchmarks.quality_real`` does (JSON, then its table); with one, only writes them
there:

    .venv/bin/python -m benchmarks.numbered_probe [--jobs 2] [--row-interval 1h]
        [--anomalies 1-4]
    .venv/bin/python -m benchmarks.numbered_probe /tmp/numbered
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.quality_real import run, table
from stream.replay.row_interval import add_row_interval

ROWS_A_DAY = 24
ANOMALIES = (1, 4)  # anomalies per series, the fewest and the most


def probe(
    seed: int, anomalies: bool = True, count: tuple[int, int] = ANOMALIES
) -> tuple[np.ndarray, np.ndarray]:
    """One probe's hourly values and labels (``anomalies=False``: the same series with
    nothing wrong in it, and no label; ``count``: anomalies per series, from and to)."""
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1400, 1700))
    i = np.arange(n)
    strength = rng.uniform(0.0, 3.0)
    base = 100 * rng.uniform(0.5, 5)
    day = np.sin(2 * np.pi * i / ROWS_A_DAY + rng.uniform(0, 6))
    v = base * (1 + 0.2 * strength * day + 0.0002 * rng.normal() * i)
    v = v + rng.normal(0, base * rng.uniform(0.02, 0.08), n)
    label = np.zeros(n, dtype=int)
    sd = base * 0.05
    for _ in range(int(rng.integers(count[0], count[1] + 1)) if anomalies else 0):
        at = int(rng.integers(int(0.15 * n) + 5, n - 20))
        kind = rng.integers(0, 3)
        if kind == 0:
            v[at] += rng.choice([-1, 1]) * rng.uniform(5, 10) * sd
            label[at] = 1
        elif kind == 1:
            rows = int(rng.integers(3, 12))
            v[at : at + rows] -= rng.uniform(4, 8) * sd
            label[at : at + rows] = 1
        else:
            rows = int(rng.integers(6, 24))
            v[at : at + rows] *= rng.uniform(1.4, 1.8)
            label[at : at + rows] = 1
    return v, label


def write(folder: Path, series: int = 24, count: tuple[int, int] = ANOMALIES) -> None:
    """``series`` probes as ``timestamp,value,is_anomaly`` CSVs under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(series):
        v, label = probe(s, count=count)
        rows = "".join(
            f"{k},{x:.4f},{y}\n" for k, (x, y) in enumerate(zip(v, label, strict=True), 1)
        )
        (folder / f"numbered_{s:02d}.csv").write_text("timestamp,value,is_anomaly\n" + rows)


def _span(text: str) -> tuple[int, int]:
    """``LO-HI`` (or one number) as the fewest and most anomalies per series."""
    lo, _, hi = text.partition("-")
    try:
        span = (int(lo), int(hi or lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count or a range LO-HI") from None
    if not 0 <= span[0] <= span[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= LO <= HI")
    return span


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, nargs="?", help="write the probes here, no scoring")
    ap.add_argument("--series", type=int, default=24)
    ap.add_argument(
        "--anomalies", type=_span, default=ANOMALIES, help="anomalies per series (default 1-4)"
    )
    ap.add_argument("--jobs", type=int, default=1, help="replays in parallel processes")
    add_row_interval(ap)
    args = ap.parse_args(argv)
    if args.folder is not None:
        write(args.folder, args.series, args.anomalies)
        return 0
    with tempfile.TemporaryDirectory(prefix="numbered_probe_") as tmp:
        write(Path(tmp), args.series, args.anomalies)
        doc = run(Path(tmp), max(1, args.jobs), None, row_interval_s=args.row_interval)
    lo, hi = args.anomalies
    doc["data"] = f"benchmarks.numbered_probe ({args.series} series, {lo}-{hi} anomalies each)"
    doc["anomalies_per_series"] = [lo, hi]
    sys.stdout.write(json.dumps(doc) + "\n" + table(doc) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
