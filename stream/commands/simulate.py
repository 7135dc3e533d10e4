"""``llmwatch simulate``: a simulated fleet as JSONL files, or published to Kafka."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemas.durations import duration_arg
from stream.simulate import FleetSpec, Incident, default_incidents, load_incidents, simulate, write
from stream.simulate.publish import (
    FleetPublisher,
    Pacer,
    PublishStats,
    live_start,
    publish_events,
    topics_for,
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="generate a seeded, realistic LLM fleet stream with labelled incidents",
        description=(
            "Write events.jsonl (or one file per kind) and labels.jsonl to --out, or publish "
            "the events to the llmwatch topics with --to-kafka (LLMWATCH_BOOTSTRAP_SERVERS; "
            "without it an embedded broker is started and kept up until Ctrl-C)."
        ),
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (files mode; default: none, required without --to-kafka)",
    )
    p.add_argument("--to-kafka", action="store_true", help="publish to Kafka instead of files")
    p.add_argument(
        "--realtime",
        action="store_true",
        help="with --to-kafka: pace events by event time, stamped relative to now",
    )
    p.add_argument(
        "--speed", type=float, default=1.0, help="with --realtime: event time runs this much faster"
    )
    p.add_argument("--duration", type=duration_arg, default=600.0, help="e.g. 90s, 10m, 2h")
    p.add_argument("--rate", type=float, default=200.0, help="inference events per second")
    p.add_argument("--seed", type=int, default=7, help="random seed")
    p.add_argument(
        "--start",
        type=datetime.fromisoformat,
        default=None,
        help=f"ISO-8601, UTC (default: {FleetSpec().start:%Y-%m-%dT%H:%M}, or now with --realtime)",
    )
    p.add_argument(
        "--hosts", type=int, default=None, help=f"GPU hosts (default: {FleetSpec().hosts})"
    )
    p.add_argument(
        "--gpus-per-host",
        type=int,
        default=None,
        help=f"GPUs per host (default: {FleetSpec().gpus_per_host})",
    )
    p.add_argument(
        "--incidents",
        default="default",
        help="default (one of every kind), none, or a JSON file with a list of incidents "
        "(default: default)",
    )
    p.add_argument("--split", action="store_true", help="one file per event kind")
    p.set_defaults(func=run)


def _fleet(args: argparse.Namespace) -> tuple[FleetSpec, list[Incident]]:
    fields: dict[str, Any] = {"seed": args.seed, "duration_s": args.duration, "rate": args.rate}
    for name in ("start", "hosts", "gpus_per_host"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    if args.realtime and args.start is None:
        fields["start"] = live_start(time.time(), args.duration, args.speed)
    try:
        spec = FleetSpec(**fields)
    except ValidationError as exc:
        raise ValueError(_as_flags(exc)) from None
    if args.incidents == "default":
        incidents = default_incidents(spec, spec.seed)
    elif args.incidents == "none":
        incidents = []
    else:
        incidents = _incidents(Path(args.incidents))
    return spec, incidents


def _as_flags(exc: ValidationError) -> str:
    """FleetSpec's complaints named by the flag that set the field, one per line."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        field = str(err["loc"][0]) if err["loc"] else ""
        flag = "--" + field.removesuffix("_s").replace("_", "-") if field else "simulate"
        lines.append(f"{flag}: {str(err['msg']).removeprefix('Value error, ')}")
    return "\n  ".join(lines)


def _incidents(path: Path) -> list[Incident]:
    from stream.cli import describe_validation

    try:
        return load_incidents(path)
    except ValidationError as exc:
        raise ValueError(f"--incidents {path}:\n  {describe_validation(exc)}") from None
    except ValueError as exc:  # not JSON
        raise ValueError(f"--incidents {path}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        raise ValueError(f"--speed: must be positive, got {args.speed}")
    if args.realtime and not args.to_kafka:
        raise ValueError("--realtime: only with --to-kafka (files are written as fast as possible)")
    if args.to_kafka:
        return run_kafka(args)
    if args.out is None:
        raise ValueError("--out: required unless --to-kafka")
    spec, incidents = _fleet(args)
    began = time.perf_counter()
    files = write(spec, incidents, args.out, split_by_kind=args.split)
    took = time.perf_counter() - began
    total = sum(files.counts.values())
    counts = ", ".join(f"{k} {v}" for k, v in files.counts.items())
    print(f"wrote {total} events ({counts}) and {len(incidents)} incidents in {took:.2f} s")
    for path in files.paths:
        print(f"  {path}")
    return 0


class ProgressLine:
    """A one-line status on stderr: rewritten in place on a terminal, every 10 s otherwise."""

    def __init__(self, span_s: float, stream: Any = None) -> None:
        self.out = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.span_s = span_s
        self.began = time.monotonic()
        self._printed = 0.0

    def __call__(self, stats: PublishStats) -> None:
        now = time.monotonic()
        if not self.tty and now - self._printed < 10.0:
            return
        self._printed = now
        took = max(1e-9, now - self.began)
        done = (
            0.0 if stats.first_t is None or stats.last_t is None else stats.last_t - stats.first_t
        )
        line = (
            f"published {stats.total:,} ({stats.total / took:,.0f}/s), event time "
            f"{done:,.0f}/{self.span_s:,.0f} s, delivered {stats.delivered:,}, "
            f"failed {stats.failed:,}"
        )
        print(
            f"\r{line}\x1b[K" if self.tty else line,
            end="" if self.tty else "\n",
            file=self.out,
            flush=True,
        )

    def done(self) -> None:
        if self.tty:
            print(file=self.out, flush=True)


def run_kafka(args: argparse.Namespace) -> int:
    from stream.settings import kafka_client_config, load_settings

    settings = load_settings()
    with contextlib.ExitStack() as stack:
        embedded = not settings.bootstrap_servers
        if embedded:
            from stream.broker import EmbeddedBroker, worker_topic_partitions

            broker = EmbeddedBroker(topics=worker_topic_partitions(settings))
            address = stack.enter_context(broker)
            settings = settings.model_copy(update={"bootstrap_servers": address})
            print(f"embedded broker listening on {address}", flush=True)
        else:
            from stream.preflight import check_brokers

            check_brokers(settings)
        spec, incidents = _fleet(args)
        publisher = FleetPublisher(kafka_client_config(settings), topics_for(settings))
        pacer = Pacer(args.speed) if args.realtime else None
        mode = f"real time x{args.speed:g}" if args.realtime else "as fast as possible"
        print(
            f"publishing {spec.duration_s:g} s of a simulated fleet with {len(incidents)} "
            f"incidents to {settings.bootstrap_servers} ({mode}); Ctrl-C stops",
            flush=True,
        )
        progress = ProgressLine(spec.duration_s)
        began = time.perf_counter()
        interrupted = False
        try:
            publish_events(simulate(spec, incidents), publisher, pacer=pacer, on_tick=progress)
        except KeyboardInterrupt:
            interrupted = True
        if progress.tty:
            progress(publisher.stats)
        progress.done()
        left = publisher.flush(30.0)
        stats = publisher.stats
        took = time.perf_counter() - began
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.sent.items()))
        print(
            f"{'stopped' if interrupted else 'done'}: sent {stats.total:,} events ({kinds}) in "
            f"{took:.1f} s; delivered {stats.delivered:,}, failed {stats.failed:,}, "
            f"undelivered {left:,}"
            + (f"; last error: {stats.last_error}" if stats.last_error else ""),
            flush=True,
        )
        if embedded and not interrupted:
            print("embedded broker stays up for consumers; Ctrl-C stops it", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    if interrupted:
        return 130
    return 0 if stats.failed == 0 and left == 0 else 1
