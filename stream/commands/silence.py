"""``llmwatch silence add|list|expire``: manage silences through the notifier API."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
from typing import Any

from schemas.durations import duration_arg
from stream.notify.client import add_client_args, client_for


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("silence", help="add, list or expire notifier silences")
    sub = p.add_subparsers(dest="silence_command", metavar="SUBCOMMAND", required=True)
    add = sub.add_parser("add", help='mute alerts matching label matchers, e.g. model="llama"')
    add.add_argument("matchers", nargs="+", help='label matchers: name="v", !=, =~, !~')
    add.add_argument("--duration", type=duration_arg, default=3600.0, help="e.g. 30m, 2h")
    add.add_argument("--comment", default="", help="why (shown in the list)")
    add.add_argument("--author", default=None, help="default: your user name")
    add_client_args(add)
    add.set_defaults(func=run_add)
    ls = sub.add_parser("list", help="silences in force or pending")
    ls.add_argument("--all", action="store_true", help="include expired ones")
    add_client_args(ls)
    ls.set_defaults(func=run_list)
    ex = sub.add_parser("expire", help="end a silence now")
    ex.add_argument("id")
    add_client_args(ex)
    ex.set_defaults(func=run_expire)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_add(args: argparse.Namespace) -> int:
    body = {
        "matchers": args.matchers,
        "duration": args.duration,
        "created_by": args.author or getpass.getuser(),
        "comment": args.comment,
    }
    sil = client_for(args.url).call("POST", "/api/silences", body)
    print(f"{sil['id']} until {_when(sil['ends_at'])}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    path = "/api/silences?all=1" if args.all else "/api/silences"
    for sil in client_for(args.url).call("GET", path):
        print(
            f"{sil['id']}  {sil['state']:<8} {_when(sil['starts_at'])} -> {_when(sil['ends_at'])}"
            f"  {' '.join(sil['matchers'])}  by {sil['created_by']}"
            + (f": {sil['comment']}" if sil["comment"] else "")
        )
    return 0


def run_expire(args: argparse.Namespace) -> int:
    sil = client_for(args.url).call("DELETE", f"/api/silences/{args.id}")
    print(f"{sil['id']} expired at {_when(sil['ends_at'])}")
    return 0
