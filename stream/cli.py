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
from typing import Any

from pydantic import ValidationError

from schemas.durations import duration_arg, format_duration
from stream import commands

# Flags whose default needs no words: a switch is off unless given.
_SWITCHES = (
    argparse._StoreTrueAction,
    argparse._StoreFalseAction,
    argparse._StoreConstAction,
    argparse._CountAction,
    argparse._HelpAction,
    argparse._VersionAction,
)


class DefaultsFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to every option whose help does not already say its default.

    Durations are shown as written (``10m``, not ``600.0``). An option whose default is
    None must say in its own help what happens without it (the CLI test checks).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or not action.option_strings
            or action.required
            or action.default in (None, argparse.SUPPRESS)
            or isinstance(action, _SWITCHES)
        ):
            return text
        if action.type is duration_arg and isinstance(action.default, int | float):
            shown = format_duration(action.default)
        elif isinstance(action.default, list | tuple):
            shown = ",".join(str(v) for v in action.default) or "none"
        elif action.default == "":
            shown = "none"
        else:
            shown = "%(default)s"
        return f"{text} (default: {shown})" if text else f"default: {shown}"


class Parser(argparse.ArgumentParser):
    """Every llmwatch parser, subcommands included: help shows the defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)


def _version() -> str:
    try:
        return version("llmwatch")
    except PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    except ValidationError as exc:
        # A model that caught bad input: each field on its own line, no pydantic links.
        print(f"llmwatch {args.command}: error: {describe_validation(exc)}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        # Config and input errors are the user's to fix: say what, no traceback.
        print(f"llmwatch {args.command}: error: {exc}", file=sys.stderr)
        return 2


def describe_validation(exc: ValidationError) -> str:
    """``field: message`` per problem, one per line; input values and links left out."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "\n  ".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
