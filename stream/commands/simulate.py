"""``llmwatch simulate``: write a simulated fleet's events and incident labels as JSONL."""

from __future__ import annotations

import argparse
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from stream.simulate import FleetSpec, default_incidents, load_incidents, write

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "10m", "2h", "1.5d"."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 90s, 10m, 2h)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="generate a seeded, realistic LLM fleet stream with labelled incidents",
        description="Write events.jsonl (or one file per kind) and labels.jsonl to --out.",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--duration", type=parse_duration, default=600.0, help="e.g. 90s, 10m, 2h")
    p.add_argument("--rate", type=float, default=200.0, help="inference events per second")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start", type=datetime.fromisoformat, default=None, help="ISO-8601, UTC")
    p.add_argument("--hosts", type=int, default=None)
    p.add_argument("--gpus-per-host", type=int, default=None)
    p.add_argument(
        "--incidents",
        default="default",
        help="default (one of every kind), none, or a JSON file with a list of incidents",
    )
    p.add_argument("--split", action="store_true", help="one file per event kind")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"seed": args.seed, "duration_s": args.duration, "rate": args.rate}
    for name in ("start", "hosts", "gpus_per_host"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    spec = FleetSpec(**fields)
    if args.incidents == "default":
        incidents = default_incidents(spec, spec.seed)
    elif args.incidents == "none":
        incidents = []
    else:
        incidents = load_incidents(Path(args.incidents))
    began = time.perf_counter()
    files = write(spec, incidents, args.out, split_by_kind=args.split)
    took = time.perf_counter() - began
    total = sum(files.counts.values())
    counts = ", ".join(f"{k} {v}" for k, v in files.counts.items())
    print(f"wrote {total} events ({counts}) and {len(incidents)} incidents in {took:.2f} s")
    for path in files.paths:
        print(f"  {path}")
    return 0
