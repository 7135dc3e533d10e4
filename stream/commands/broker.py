"""``llmwatch broker``: run the embedded Kafka-protocol broker and print its address."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from schemas.durations import duration_arg


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "broker",
        help="run an in-memory Kafka-protocol broker (librdkafka mock cluster) for demos/tests",
        description=(
            "Prints the bootstrap address (set it as LLMWATCH_BOOTSTRAP_SERVERS for the other "
            "commands) and serves until Ctrl-C or --duration. In memory: nothing survives a stop. "
            "Every topic the worker needs is made with LLMWATCH_PARTITIONS partitions (and "
            "the LLMWATCH_TOPIC_* names); any other topic auto-creates with 4."
        ),
    )
    p.add_argument(
        "--duration",
        type=duration_arg,
        default=None,
        help="stop after e.g. 10m (default: run until Ctrl-C)",
    )
    p.add_argument("--brokers", type=int, default=1, help="mock cluster size")
    p.add_argument("--app-id", default="llmwatch", help="the worker app id whose changelog to make")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    from stream.broker import EmbeddedBroker, worker_topic_partitions
    from stream.settings import load_settings

    topics = worker_topic_partitions(load_settings(), getattr(args, "app_id", "llmwatch"))
    done = stop if stop is not None else threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        # Containers stop with SIGTERM: shut down as cleanly as on Ctrl-C.
        previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        with EmbeddedBroker(num_brokers=args.brokers, topics=topics) as bootstrap:
            print(bootstrap, flush=True)
            # Event.wait wakes for Ctrl-C (KeyboardInterrupt) as well as for the duration.
            done.wait(args.duration)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0
