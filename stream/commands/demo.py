"""``llmwatch demo`` (``make demo``): a simulated fleet with incidents, replayed offline.

Prints each alert as one line as it fires or resolves, a scored summary against the
injected incidents, and the path of the HTML report.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from stream.commands.simulate import parse_duration
from stream.config import load_config
from stream.replay.console import describe, printer
from stream.replay.pipeline import replay_files
from stream.simulate import FleetSpec, default_incidents, write


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="simulate a small fleet with incidents and watch llmwatch catch them (offline)",
    )
    p.add_argument("--duration", type=parse_duration, default=1200.0, help="event time, e.g. 20m")
    p.add_argument("--rate", type=float, default=120.0, help="inference events per second")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--out", type=Path, default=Path("llmwatch-demo"), help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    spec = FleetSpec(seed=args.seed, duration_s=args.duration, rate=args.rate)
    incidents = default_incidents(spec, args.seed)
    files = write(spec, incidents, args.out / "fleet")
    total = sum(files.counts.values())
    print(
        f"simulated {total} events over {args.duration / 60:.0f} min of event time with "
        f"{len(incidents)} incidents ({', '.join(i.kind.value for i in incidents)})"
    )
    assert files.events is not None
    print("replaying through the detectors; alerts as they fire and resolve:")
    outcome = replay_files(
        [files.events],
        out=args.out,
        labels=files.labels,
        config=load_config(args.config),
        on_alert=printer(),
    )
    if outcome.summary is not None:
        print(describe(outcome.summary))
    took = time.perf_counter() - began
    print(f"done in {took:.1f} s; alerts: {outcome.paths['alerts']}")
    print(f"report: {outcome.paths['report'].resolve()}")
    return 0
