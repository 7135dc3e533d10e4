"""The ``llmwatch`` command. Each subcommand lives in its own module in ``stream.commands``.

A command module defines ``register(subparsers)``, which adds its parser and sets
``func`` (``(argparse.Namespace) -> int``) as the parser default. Modules are
found automatically so adding a command touches no shared file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from stream import commands


def _version() -> str:
    try:
        return version("llmwatch")
    except PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmwatch",
        description="Streaming anomaly detection for LLM inference fleets.",
    )
    parser.add_argument("--version", action="version", version=f"llmwatch {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError) as exc:
        # Config and input errors are the user's to fix: say what, no traceback.
        print(f"llmwatch {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
