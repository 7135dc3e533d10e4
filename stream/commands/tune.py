"""``llmwatch tune``: search detector/lifecycle settings against labelled replays."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from schemas.durations import duration_arg
from stream.config import load_config
from stream.replay.tune import (
    DEFAULT_GRACE_S,
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
        "objective = NAB score from alert onsets",
    )
    p.add_argument("--config", type=Path, default=None, help="base config (default: defaults)")
    p.add_argument("--trials", type=int, default=20, help="configs tried")
    p.add_argument("--seed", type=int, default=0, help="search seed")
    p.add_argument(
        "--grace", type=duration_arg, default=DEFAULT_GRACE_S, help="match grace after an incident"
    )
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
    top = max(rows, key=lambda r: r["objective"])
    print(
        f"{len(rows)} trials; best trial {top['trial']}: objective {top['objective']:.3f}, "
        f"precision {top['precision']}, recall {top['recall']}, "
        f"median delay {top['delay_p50_s']} s"
    )
    for name, path in paths.items():
        print(f"  {name}: {path}")
    return 0


def _run_labelled(args: argparse.Namespace) -> int:
    best, rows = tune_labelled(
        args.labelled, base=load_config(args.config), trials=args.trials, seed=args.seed
    )
    paths = write_results(args.out, best, rows)
    top = max(rows, key=lambda r: r["objective"])
    fa = top["false_alerts_per_series_week"]
    print(
        f"{len(rows)} trials; best trial {top['trial']}: NAB score (alert onsets) "
        f"{top['objective']:.1f}, recall {top['recall']}, achieved budget "
        f"{fa['overall']} false alerts per series-week "
        f"({fa['series_without_anomalies']} on series without anomalies)"
    )
    for name, path in paths.items():
        print(f"  {name}: {path}")
    return 0
