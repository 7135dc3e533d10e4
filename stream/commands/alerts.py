"""``llmwatch alerts tail``: print the alerts topic, one readable line per alert."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from pydantic import ValidationError

from schemas.models import Alert
from stream.commands.simulate import parse_duration
from stream.replay.console import alert_line


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("alerts", help="read the alerts topic")
    sub = p.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND", required=True)
    tail = sub.add_parser("tail", help="print alerts as they arrive, one line each")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest alert")
    tail.add_argument(
        "--duration", type=parse_duration, default=None, help="stop after e.g. 30s (default: ^C)"
    )
    tail.add_argument("--max", type=int, default=None, help="stop after this many alerts")
    tail.set_defaults(func=run_tail)


def format_alert(raw: bytes) -> str:
    try:
        return alert_line(Alert.model_validate_json(raw))
    except ValidationError as exc:
        return f"(unreadable alert: {exc.error_count()} error(s)) {raw[:120]!r}"


def run_tail(args: argparse.Namespace) -> int:
    from confluent_kafka import Consumer

    from stream.settings import kafka_client_config, load_settings

    settings = load_settings()
    if not settings.bootstrap_servers:
        raise ValueError(
            "bootstrap_servers: set LLMWATCH_BOOTSTRAP_SERVERS to the broker the worker printed"
        )
    conf = dict(kafka_client_config(settings))
    conf.update(
        {
            # A private group: tailing never moves anyone else's offsets.
            "group.id": f"llmwatch-alerts-tail-{os.getpid()}-{time.time_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest" if args.from_beginning else "latest",
        }
    )
    consumer = Consumer(conf)
    consumer.subscribe([settings.topic_alerts])
    deadline = None if args.duration is None else time.monotonic() + args.duration
    seen = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().fatal():
                    print(f"llmwatch alerts tail: {msg.error()}", file=sys.stderr)
                    return 1
                continue
            print(format_alert(msg.value() or b""), flush=True)
            seen += 1
            if args.max is not None and seen >= args.max:
                break
    finally:
        consumer.close()
    return 0
