"""``llmwatch tune``: search detector/lifecycle settings against labelled replays."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from schemas.durations import duration_arg
from stream.config import load_config
from stream.replay.row_interval import add_row_interval
from stream.replay.scoring import DEFAULT_GRACE_S
from stream.replay.tune import (
    load_datasets,
    tune,
    tune_labelled,
    write_results,
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "tune",
        help="random search of detector/lifecycle settings over labelled replays",
        description=(
            "Replays each --events file (paired in order with a --labels file) once per "
            "trial and keeps the config with the best objective: incident F1 minus a "
            "median-delay and a false-alert penalty. Writes best.yaml (a config file), "
            "trials.json, tradeoff.png and tune.html to --out."
        ),
    )
    p.add_argument("--events", type=Path, nargs="+", default=[], help="events .jsonl files")
    p.add_argument(
        "--labels", type=Path, nargs="+", default=[], help="labels.jsonl, one per --events"
    )
    p.add_argument(
        "--labelled",
        type=Path,
        default=None,
        help="instead: a folder of labelled CSV series (windows.json, or a label column); "
        "objective = NAB score from alert onsets (default: none, tune on --events)",
    )
    p.add_argument("--config", type=Path, default=None, help="base config (default: defaults)")
    p.add_argument("--trials", type=int, default=20, help="configs tried")
    p.add_argument("--seed", type=int, default=0, help="search seed")
    p.add_argument(
        "--grace", type=duration_arg, default=DEFAULT_GRACE_S, help="match grace after an incident"
    )
    add_row_interval(p)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.labelled is not None:
        return _run_labelled(args)
    if not args.events:
        raise SystemExit("tune: give --events with --labels, or --labelled FOLDER")
    datasets = load_datasets(args.events, args.labels)
    best, rows = tune(
        datasets,
        base=load_config(args.config),
        trials=args.trials,
        seed=args.seed,
        grace_s=args.grace,
    )
    paths = write_results(args.out, best, rows)
    print(summary_line(rows))
    for name, path in paths.items():
        print(f"  {name}: {path}")
    return 0


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _num(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def summary_line(rows: list[dict[str, Any]]) -> str:
    """The best trial in rounded figures (trials.json keeps the exact ones)."""
    top = max(rows, key=lambda r: r["objective"])
    delay = top["delay_p50_s"]
    return (
        f"{len(rows)} trials; best trial {top['trial']}: objective {top['objective']:.3f}, "
        f"precision {_pct(top['precision'])}, recall {_pct(top['recall'])}, "
        f"median delay {'n/a' if delay is None else f'{delay:.1f} s'}, "
        f"{_num(top.get('false_alerts_per_series_day'))} false alerts per series-day"
    )


def labelled_summary_line(rows: list[dict[str, Any]]) -> str:
    top = max(rows, key=lambda r: r["objective"])
    fa = top["false_alerts_per_series_week"]
    return (
        f"{len(rows)} trials; best trial {top['trial']}: NAB score (alert onsets) "
        f"{top['objective']:.1f}, recall {_pct(top['recall'])}, achieved budget "
        f"{_num(fa['overall'])} false alerts per series-week "
        f"({_num(fa['series_without_anomalies'])} on series without anomalies)"
    )


def _run_labelled(args: argparse.Namespace) -> int:
    best, rows = tune_labelled(
        args.labelled,
        base=load_config(args.config),
        trials=args.trials,
        seed=args.seed,
        row_interval_s=args.row_interval,
    )
    paths = write_results(args.out, best, rows)
    print(labelled_summary_line(rows))
    for name, path in paths.items():
        print(f"  {name}: {path}")
    return 0
