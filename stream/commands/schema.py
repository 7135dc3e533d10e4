"""``llmwatch schema export``: write (or check) the JSON Schemas of the wire models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from schemas.export import JSON_DIR, check_json_schemas, export_json_schemas


def _export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.check:
        drifted = check_json_schemas(out)
        if drifted:
            print(f"JSON schemas out of date in {out}:", file=sys.stderr)
            for name in drifted:
                print(f"  {name}", file=sys.stderr)
            print("run `llmwatch schema export` to regenerate them", file=sys.stderr)
            return 1
        print(f"JSON schemas in {out} are up to date")
        return 0
    for path in export_json_schemas(out):
        print(path)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("schema", help="wire-format JSON Schemas")
    sub = parser.add_subparsers(dest="schema_command", metavar="ACTION", required=True)
    export = sub.add_parser("export", help="write <kind>.schema.json for every wire model")
    export.add_argument("--out", default=str(JSON_DIR), help="directory (default: %(default)s)")
    export.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 listing drifted files"
    )
    export.set_defaults(func=_export)
