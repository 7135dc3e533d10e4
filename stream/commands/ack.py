"""``llmwatch ack FINGERPRINT``: acknowledge a firing alert (PagerDuty ack, Slack update)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
from typing import Any

from schemas.durations import duration_arg
from stream.notify.client import add_client_args, client_for


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("ack", help="acknowledge a firing alert by fingerprint")
    p.add_argument("fingerprint")
    p.add_argument("--comment", default="", help="why, for the others on call (default: none)")
    p.add_argument("--expires", type=duration_arg, default=None, help="e.g. 2h (default 4h)")
    p.add_argument("--by", default=None, help="default: your user name")
    p.add_argument("--alert-id", default=None, help="the firing instance (default: current)")
    add_client_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "fingerprint": args.fingerprint,
        "by": args.by or getpass.getuser(),
        "comment": args.comment,
    }
    if args.expires is not None:
        body["expires_in"] = args.expires
    if args.alert_id is not None:
        body["alert_id"] = args.alert_id
    ack = client_for(args.url).call("POST", "/api/acks", body)
    until = dt.datetime.fromtimestamp(ack["expires_at"], dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"acknowledged {ack['fingerprint']} ({ack['alert_id']}) until {until}")
    return 0
