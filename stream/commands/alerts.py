"""``llmwatch alerts tail``: print the alerts topic, one readable line per alert."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from schemas.durations import duration_arg
from schemas.models import Alert
from stream.replay.console import alert_line


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("alerts", help="read the alerts topic")
    sub = p.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND", required=True)
    tail = sub.add_parser("tail", help="print alerts as they arrive, one line each")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest alert")
    tail.add_argument(
        "--duration", type=duration_arg, default=None, help="stop after e.g. 30s (default: ^C)"
    )
    tail.add_argument(
        "--max", type=int, default=None, help="stop after this many alerts (default: no limit)"
    )
    tail.set_defaults(func=run_tail)


def format_alert(raw: bytes) -> str:
    try:
        return alert_line(Alert.model_validate_json(raw))
    except ValidationError as exc:
        return f"(unreadable alert: {exc.error_count()} error(s)) {raw[:120]!r}"


@dataclass(frozen=True)
class Seen:
    received: float  # time.monotonic() when the consumer got it
    alert: Alert


class AlertWatcher:
    """Reads the alerts topic on a background thread; ``on_alert`` gets each one as it arrives.

    A private consumer group, so watching never moves anyone else's offsets. Unreadable
    messages are counted, not dropped silently.
    """

    def __init__(
        self,
        client: Mapping[str, str],
        topic: str,
        on_alert: Callable[[Seen], None],
        *,
        from_beginning: bool = True,
        on_unreadable: Callable[[bytes], None] | None = None,
    ) -> None:
        from confluent_kafka import Consumer

        conf: dict[str, Any] = dict(client)
        conf.update(
            {
                "group.id": f"llmwatch-alerts-watch-{os.getpid()}-{time.time_ns()}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                "log.connection.close": False,
                # A console wants each alert as it lands, not in half-second fetches.
                "fetch.wait.max.ms": 100,
            }
        )
        self._consumer = Consumer(conf)
        self._consumer.subscribe([topic])
        self._on_alert = on_alert
        self._on_unreadable = on_unreadable
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="alert-watcher", daemon=True)
        self.unreadable = 0
        self.error: str | None = None

    def start(self, join_timeout_s: float = 15.0) -> bool:
        """Join the group (so nothing published after this is missed), then read on a thread."""
        deadline = time.monotonic() + join_timeout_s
        while not self._consumer.assignment() and time.monotonic() < deadline:
            msg = self._consumer.poll(0)  # non-blocking: a ^C here stays a KeyboardInterrupt
            if msg is not None:
                self._handle(msg)
            else:
                time.sleep(0.05)
        joined = bool(self._consumer.assignment())
        self._thread.start()
        return joined

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self._consumer.close()

    def _loop(self) -> None:
        while not self._halt.is_set():
            msg = self._consumer.poll(0.2)
            if msg is not None:
                self._handle(msg)

    def _handle(self, msg: Any) -> None:
        err = msg.error()
        if err is not None:
            if err.fatal():
                self.error = str(err)
                self._halt.set()
            return
        raw = msg.value() or b""
        try:
            alert = Alert.model_validate_json(raw)
        except ValidationError:
            self.unreadable += 1
            if self._on_unreadable is not None:
                self._on_unreadable(raw)
            return
        self._on_alert(Seen(time.monotonic(), alert))


def run_tail(args: argparse.Namespace) -> int:
    from stream.settings import kafka_client_config, load_settings

    settings = load_settings()
    if not settings.bootstrap_servers:
        raise ValueError(
            "bootstrap_servers: set LLMWATCH_BOOTSTRAP_SERVERS to the broker the worker printed"
        )
    from stream.preflight import check_brokers

    check_brokers(settings)  # one line and exit code 2, not librdkafka's log
    enough = threading.Event()
    shown = 0

    def show(line: str) -> None:
        nonlocal shown
        if enough.is_set():
            return  # --max reached; the reader thread may still hand over a few more
        print(line, flush=True)
        shown += 1
        if args.max is not None and shown >= args.max:
            enough.set()

    watcher = AlertWatcher(
        kafka_client_config(settings),
        settings.topic_alerts,
        lambda s: show(alert_line(s.alert)),
        from_beginning=args.from_beginning,
        on_unreadable=lambda raw: show(format_alert(raw)),
    )
    deadline = None if args.duration is None else time.monotonic() + args.duration
    try:
        watcher.start()
        # The main thread only sleeps, so ^C never lands inside librdkafka.
        while not enough.is_set() and watcher.error is None:
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
    if watcher.error is not None:
        print(f"llmwatch alerts tail: {watcher.error}", file=sys.stderr)
        return 1
    return 0
