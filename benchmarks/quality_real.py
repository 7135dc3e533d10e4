"""Detection quality on real labelled metric series, replayed as ``llmwatch replay`` does.

Every CSV under a folder goes through the product's CSV replay (``Replayer`` over a
``CsvSource``: the same detectors, engine and alert lifecycle) with the default
config (or ``--config``), one series per replay, and is scored against its labelled
windows (``stream.replay.labelled``): NAB's standard-profile score from alert onsets
and from per-row scores (at the best pooled threshold and at 0.5), false alerts per
series-week (outside windows, on series without anomalies, overall), incident
recall and median detection delay, per folder and overall. One JSON object out.

    .venv/bin/python -m benchmarks.quality_real [--data DIR] [--jobs N] [--config FILE]
                                                [--missed SHARE]

``--missed 0.1`` replays three copies of the series with a tenth of their rows missing
(a seeded random choice per copy and file; the windows stay), scored together: real
scrapes miss samples, and a series sampled less densely has changed nothing that
should page.

The default folder is ``../shared/data/nab_dev`` (28 NAB series with ``windows.json``);
any folder of ``timestamp,value,label`` CSVs works too (incidents = runs of label 1).
A CSV whose timestamps are row numbers (1, 2, 3, ...) replays 5 minutes apart a row
(``--row-interval`` says otherwise).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from stream.config import LlmwatchConfig, load_config
from stream.replay.labelled import LabelledSeries, SeriesRun, evaluate_runs, load_folder
from stream.replay.labelled import replay_series as _replay
from stream.replay.row_interval import add_row_interval

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "nab_dev"
TARGETS = {
    "nab_onset": 70.0,
    "nab_rows_best": 70.0,
    "false_alerts_per_series_week": 0.5,
}
_CONFIG: LlmwatchConfig | None = None


def _init(config_path: str | None) -> None:
    global _CONFIG
    _CONFIG = load_config(Path(config_path)) if config_path else None


def _one(series: LabelledSeries) -> SeriesRun:
    return _replay(series, _CONFIG)


def thinned(data: Path, dst: Path, share: float, seed: int = 0) -> Path:
    """A copy of ``data`` in ``dst`` with a share of each CSV's rows missing (the same
    rows for a given seed and file), and its ``windows.json`` if it has one."""
    for path in sorted(data.rglob("*.csv")):
        rel = path.relative_to(data)
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        rng = np.random.default_rng([seed, *rel.as_posix().encode()])
        keep = rng.random(len(rows) - 1) >= share
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        with (dst / rel).open("w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(rows[0])
            out.writerows(r for r, k in zip(rows[1:], keep, strict=True) if k)
    if (data / "windows.json").exists():
        shutil.copy(data / "windows.json", dst / "windows.json")
    return dst


def _replays(series: list[LabelledSeries], jobs: int, config_path: str | None) -> list[SeriesRun]:
    if jobs > 1:
        with ProcessPoolExecutor(jobs, initializer=_init, initargs=(config_path,)) as pool:
            return list(pool.map(_one, series))
    _init(config_path)
    return [_one(s) for s in series]


def run(
    data: Path,
    jobs: int,
    config_path: str | None,
    missed: float = 0.0,
    copies: int = 3,
    row_interval_s: float | None = None,
) -> dict[str, Any]:
    """Replay and score every series under ``data``; with ``missed``, ``copies`` thinned
    copies of it (seeds 0, 1, ...), scored together. A CSV whose timestamps are row
    numbers replays ``row_interval_s`` apart a row (None: as its values' daily cycle says)."""
    began = time.perf_counter()
    if missed > 0.0:
        runs: list[SeriesRun] = []
        with tempfile.TemporaryDirectory(prefix="quality_real_") as tmp:
            for seed in range(copies):
                copy = thinned(data, Path(tmp) / str(seed), missed, seed)
                runs += _replays(load_folder(copy, row_interval_s), jobs, config_path)
    else:
        runs = _replays(load_folder(data, row_interval_s), jobs, config_path)
    elapsed = time.perf_counter() - began
    rows = sum(r.ts.size for r in runs)
    out = evaluate_runs(runs)
    return {
        "data": str(data),
        "config": config_path or "defaults",
        "missed_share": missed,
        "copies": copies if missed > 0.0 else 1,
        "row_interval_s": row_interval_s,
        "files": len(runs),
        "rows": rows,
        "elapsed_s": round(elapsed, 2),
        "replay_rows_per_s": round(rows / sum(r.elapsed_s for r in runs)),
        "targets": TARGETS,
        **out,
    }


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def table(doc: dict[str, Any]) -> str:
    cols = "nab_onset rows_best rows@0.5 fa/sw_out fa/sw_clean recall delay_s"
    lines = [f"{'group':22} {cols}"]
    groups = {"overall": doc["overall"], **doc["per_folder"]}
    for name, g in groups.items():
        fa = g["false_alerts_per_series_week"]
        cells = [
            g["nab_onset"],
            g["nab_rows_best"],
            g["nab_rows_at_0_5"],
            fa["outside_windows"],
            fa["series_without_anomalies"],
            g["incident_recall"],
            g["median_delay_s"],
        ]
        lines.append(f"{name[:22]:22} " + " ".join(f"{_fmt(c):>9}" for c in cells))
    sr = doc["overall"].get("stated_range") or {}
    if sr.get("alerts"):
        lines.append(
            f"stated ranges: {sr['with_range']}/{sr['alerts']} firing alerts, width in series "
            f"ranges median {_fmt(sr['median_width'])} p90 {_fmt(sr['p90_width'])} "
            f"max {_fmt(sr['max_width'])}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--jobs", type=int, default=1, help="replays in parallel processes")
    ap.add_argument("--config", default=None, help="an llmwatch config file (default: defaults)")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument(
        "--missed", type=float, default=0.0, help="share of each series' rows left out (0-0.9)"
    )
    ap.add_argument("--quick", action="store_true", help="same run (the set is small)")
    add_row_interval(ap)
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        # The default sits beside the repository (../shared/data/nab_dev): a clone
        # elsewhere names the folder with --data.
        sys.stderr.write(f"quality_real: {args.data} is not a folder; pass --data FOLDER\n")
        return 2
    if not 0.0 <= args.missed <= 0.9:
        sys.stderr.write(f"quality_real: --missed {args.missed} is not between 0 and 0.9\n")
        return 2
    doc = run(
        args.data, max(1, args.jobs), args.config, args.missed, row_interval_s=args.row_interval
    )
    text = json.dumps(doc)
    sys.stdout.write(text + "\n")
    sys.stdout.write(table(doc) + "\n")
    if args.out is not None:
        args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
