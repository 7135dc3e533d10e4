"""``llmwatch worker``: run the streaming worker (Faust) against Kafka or an embedded broker."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from schemas.durations import duration_arg, format_duration

_LOGLEVELS = ("crit", "error", "warn", "info", "debug")
# Faust (mode) knows only the short names.
_LEVEL_NAMES = {"critical": "crit", "warning": "warn"}


def _default(field: str) -> str:
    from stream.settings import Settings

    return format_duration(Settings.model_fields[field].default)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "worker",
        help="consume the event topics, detect anomalies, publish alerts (Faust worker)",
        description=(
            "Runs the detectors and the alert lifecycle over the llmwatch topics. With no "
            "LLMWATCH_BOOTSTRAP_SERVERS an embedded Kafka-protocol broker is started in "
            "this process and its address printed. Web: /healthz, /metrics, /alerts."
        ),
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="detector/lifecycle YAML or TOML (default: LLMWATCH_CONFIG, else every default)",
    )
    p.add_argument(
        "--loglevel", choices=_LOGLEVELS, default=None, help="default: LLMWATCH_LOG_LEVEL or warn"
    )
    p.add_argument(
        "--session-timeout",
        type=duration_arg,
        default=None,
        metavar="DURATION",
        help="how long the group waits for a crashed worker before reassigning its "
        f"partitions (default: LLMWATCH_SESSION_TIMEOUT_S, else {_default('session_timeout_s')})",
    )
    p.add_argument(
        "--checkpoint-interval",
        type=duration_arg,
        default=None,
        metavar="DURATION",
        help="save engine state at least this often while events flow "
        f"(default: LLMWATCH_CHECKPOINT_INTERVAL_S, else {_default('checkpoint_interval_s')})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream.app import WorkerOptions, create_app
    from stream.config import load_config
    from stream.settings import load_settings

    settings = load_settings()
    # Fail on a bad config file before any broker starts.
    config = load_config(args.config if args.config is not None else settings.config)
    with contextlib.ExitStack() as stack:
        if not settings.bootstrap_servers:
            from stream.broker import EmbeddedBroker, worker_topic_partitions

            # Every worker topic made with LLMWATCH_PARTITIONS (the mock's own default is 4).
            broker = EmbeddedBroker(topics=worker_topic_partitions(settings))
            address = stack.enter_context(broker)
            settings = settings.model_copy(update={"bootstrap_servers": address})
            print(f"embedded broker listening on {address}", flush=True)
        else:
            from stream.preflight import check_brokers

            check_brokers(settings)  # one line and exit code 2, not librdkafka's log
            _check_topics(settings)
        options = WorkerOptions(
            session_timeout_s=_first(args.session_timeout, settings.session_timeout_s),
            checkpoint_interval_s=_first(args.checkpoint_interval, settings.checkpoint_interval_s),
            web_host=settings.web_host,
        )
        app = create_app(settings, config, options)
        level = args.loglevel or settings.log_level
        print(
            f"llmwatch worker: brokers {settings.bootstrap_servers}, "
            f"web http://{settings.web_host}:{settings.web_port}/healthz",
            flush=True,
        )
        worker = make_worker(app, level)
        worker.execute_from_commandline()  # returns when the worker stops (signal)
    return 0


def make_worker(app: Any, level: str) -> Any:
    """A Faust worker logging at ``level``, without Faust's start-up spinner.

    The spinner's log handler sets the root logger to DEBUG for good, so every debug
    call in aiokafka and Faust (several per fetch) builds a LogRecord only for the
    handlers to drop it: 14% of a worker's CPU at 20k events/s.
    """
    import faust

    worker = faust.Worker(app, loglevel=_LEVEL_NAMES.get(level, level), quiet=True)
    worker.spinner = None
    return worker


def _first(flag: float | None, setting: float) -> float:
    return setting if flag is None else flag


def _check_topics(settings: Any) -> None:
    """Refuse to start on topics whose partition counts would mix engines' state."""
    import logging

    from stream.app import engine_table
    from stream.kafka09 import PartitionMismatch, check_copartitioned

    try:
        check_copartitioned(settings, "llmwatch", [engine_table("llmwatch")])
    except PartitionMismatch as exc:
        raise SystemExit(f"llmwatch worker: {exc}") from None
    except Exception as exc:  # broker not reachable yet: Faust retries, so do not block
        logging.getLogger("llmwatch.worker").warning("topic check skipped: %s", exc)
