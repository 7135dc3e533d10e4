"""``llmwatch config``: write the full config file with every default, or check one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("config", help="write a config file with every default, or check one")
    sub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    dump = sub.add_parser(
        "dump",
        help="write the full config (detectors and lifecycle) as YAML",
        description=(
            "Every key with its value: the defaults, or --from FILE's values over them. "
            "The output loads back to the same config (--config, LLMWATCH_CONFIG); keys "
            "are described in docs/configuration.md."
        ),
    )
    dump.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        help="a config file to fill in (default: every default)",
    )
    dump.add_argument(
        "--out", type=Path, default=None, help="file to write (default: standard output)"
    )
    dump.set_defaults(func=run_dump)
    check = sub.add_parser("check", help="validate a config file; every problem on its own line")
    check.add_argument("file", type=Path, help=".yaml, .yml or .toml")
    check.set_defaults(func=run_check)


def run_dump(args: argparse.Namespace) -> int:
    from stream.config import dump_config, load_config

    text = dump_config(load_config(args.source))
    if args.out is None:
        sys.stdout.write(text)
        return 0
    if args.out.suffix.lower() not in (".yaml", ".yml"):
        raise ValueError(f"--out: the dump is YAML; name it .yaml or .yml, not {args.out.name}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def run_check(args: argparse.Namespace) -> int:
    from stream.config import load_config

    load_config(args.file)  # raises ConfigError (a ValueError): exit 2 with the message
    print(f"{args.file}: ok")
    return 0
