"""``llmwatch replay``: recorded events or CSV series through the detectors, offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from schemas.durations import duration_arg
from stream.alerting.silences import load_silences
from stream.config import load_config
from stream.notify.config import load_config as load_notify_config
from stream.replay.console import OrderedPrinter, describe, notified, progress_bar
from stream.replay.pipeline import replay_files
from stream.replay.row_interval import add_row_interval


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "replay",
        help="replay JSONL events or CSV series through the detectors and alert lifecycle",
        description=(
            "Replay recorded llmwatch events (JSONL, kinds mixed) or CSV metric series "
            "(timestamp,value or timestamp,series,value) as fast as the CPU goes. Writes "
            "alerts.jsonl, scores.csv (CSV input), summary.json (with --labels), "
            "bad_rows.jsonl and report.html to --out. Alerts are printed in event-time order "
            "when the replay ends."
        ),
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help=".jsonl or .csv files")
    p.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="labels.jsonl of known incidents (default: none, no scoring)",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="llmwatch config, .yaml/.toml (default: every default)",
    )
    p.add_argument(
        "--notify-config",
        type=Path,
        default=None,
        help="notifier config YAML whose route and inhibit rules count the pages "
        "(default: the notifier's default config)",
    )
    p.add_argument(
        "--silences",
        type=Path,
        default=None,
        help="JSON list of silences as GET /api/silences returns (default: none)",
    )
    p.add_argument("--out", type=Path, default=Path("replay-out"), help="output folder")
    p.add_argument(
        "--grace", type=duration_arg, default=300.0, help="match grace after an incident"
    )
    add_row_interval(p)
    p.add_argument("--quiet", action="store_true", help="do not print the alerts")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        notify = None if args.notify_config is None else load_notify_config(args.notify_config)
        silences = [] if args.silences is None else load_silences(args.silences)
    except ValueError as exc:
        print(f"llmwatch replay: {exc}", file=sys.stderr)
        return 2
    total = sum(Path(p).stat().st_size for p in args.inputs if Path(p).exists())
    show = None if args.quiet else OrderedPrinter()
    try:
        with progress_bar(total) as advance:
            outcome = replay_files(
                args.inputs,
                out=args.out,
                labels=args.labels,
                config=config,
                grace_s=args.grace,
                report=not args.no_report,
                on_alert=show,
                on_progress=advance,
                notify=notify,
                silences=silences,
                row_interval_s=args.row_interval,
            )
    finally:
        if show is not None:
            show.flush()  # in event-time order, also when the replay stopped early
    r = outcome.result
    rate = r.n_rows / r.elapsed_s if r.elapsed_s > 0 else 0.0
    print(f"replayed {r.n_rows} rows ({rate:,.0f}/s), {len(r.alerts)} alert events")
    if r.bad_rows:
        print(f"{len(r.bad_rows)} bad rows skipped (see bad_rows.jsonl):", file=sys.stderr)
        for b in r.bad_rows[:5]:
            print(f"  {b.source}:{b.line}: {b.reason}", file=sys.stderr)
    if r.uncovered_kinds:
        print(
            f"note: no detector consumes {', '.join(r.uncovered_kinds)} rows; their scores are 0",
            file=sys.stderr,
        )
    if outcome.summary is not None:
        print(describe(outcome.summary))
    elif outcome.notifications:
        print(notified(outcome.notifications))
    for name, path in outcome.paths.items():
        print(f"  {name}: {path}")
    return 0
