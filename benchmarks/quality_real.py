"""Detection quality on real labelled metric series, replayed as ``llmwatch replay`` does.

Every CSV under a folder goes through the product's CSV replay (``Replayer`` over a
``CsvSource``: the same detectors, engine and alert lifecycle) with the default
config (or ``--config``), one series per replay, and is scored against its labelled
windows (``stream.replay.labelled``): NAB's standard-profile score from alert onsets
and from per-row scores (at the best pooled threshold and at 0.5), false alerts per
series-week (outside windows, on series without anomalies, overall), incident
recall and median detection delay, per folder and overall. One JSON object out.

    .venv/bin/python -m benchmarks.quality_real [--data DIR] [--jobs N] [--config FILE]

The default folder is ``../shared/data/nab_dev`` (28 NAB series with ``windows.json``);
any folder of ``timestamp,value,label`` CSVs works too (incidents = runs of label 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from stream.config import LlmwatchConfig, load_config
from stream.replay.labelled import LabelledSeries, SeriesRun, evaluate_runs, load_folder
from stream.replay.labelled import replay_series as _replay

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


def run(data: Path, jobs: int, config_path: str | None) -> dict[str, Any]:
    series = load_folder(data)
    began = time.perf_counter()
    if jobs > 1:
        with ProcessPoolExecutor(jobs, initializer=_init, initargs=(config_path,)) as pool:
            runs = list(pool.map(_one, series))
    else:
        _init(config_path)
        runs = [_one(s) for s in series]
    elapsed = time.perf_counter() - began
    rows = sum(r.ts.size for r in runs)
    out = evaluate_runs(runs)
    return {
        "data": str(data),
        "config": config_path or "defaults",
        "files": len(runs),
        "rows": rows,
        "elapsed_s": round(elapsed, 2),
        "replay_rows_per_s": round(sum(r.ts.size for r in runs) / sum(r.elapsed_s for r in runs)),
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
    ap.add_argument("--quick", action="store_true", help="same run (the set is small)")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        # The default sits beside the repository (../shared/data/nab_dev): a clone
        # elsewhere names the folder with --data.
        sys.stderr.write(f"quality_real: {args.data} is not a folder; pass --data FOLDER\n")
        return 2
    doc = run(args.data, max(1, args.jobs), args.config)
    text = json.dumps(doc)
    sys.stdout.write(text + "\n")
    sys.stdout.write(table(doc) + "\n")
    if args.out is not None:
        args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
