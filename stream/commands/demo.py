"""``llmwatch demo`` (``make demo``): the live service on a simulated fleet with incidents.

Starts an embedded broker, one worker (``llmwatch worker`` as a child process), the
simulator publishing in compressed real time, and an alert console that prints each
alert as it fires or resolves; ends with events/s and event->alert latency.
``--offline`` is the replay-only demo: simulate, replay, score, HTML report.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from schemas.durations import duration_arg
from stream.config import load_config
from stream.replay.console import alert_line, describe, printer
from stream.replay.pipeline import replay_files
from stream.simulate import FleetSpec, default_incidents, simulate, write


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="watch llmwatch catch incidents on a simulated fleet, live (--offline: replay)",
        description=(
            "Live: embedded broker + worker + simulator + alert console, for --duration of "
            "wall time at --speed x event time; Ctrl-C stops early. --offline replays instead."
        ),
    )
    p.add_argument("--offline", action="store_true", help="simulate and replay, no broker")
    p.add_argument(
        "--duration",
        type=duration_arg,
        default=None,
        help="live: wall time of the stream (default 100s); offline: event time (default 20m)",
    )
    p.add_argument("--speed", type=float, default=10.0, help="live: event time x wall time")
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        help="requests per event-second (default: live 50, offline 120)",
    )
    p.add_argument("--seed", type=int, default=7, help="simulation seed")
    p.add_argument(
        "--config", type=Path, default=None, help="llmwatch config (default: every default)"
    )
    p.add_argument("--out", type=Path, default=Path("llmwatch-demo"), help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.offline:
        return run_offline(args)
    # SIGTERM (a closed terminal, a test harness, `timeout`) stops the demo as ^C does,
    # so the worker and the broker are always shut down, never orphaned.
    previous = signal.signal(signal.SIGTERM, _as_interrupt)
    try:
        return run_live(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_offline(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    duration = 1200.0 if args.duration is None else args.duration
    rate = 120.0 if args.rate is None else args.rate
    spec = FleetSpec(seed=args.seed, duration_s=duration, rate=rate)
    incidents = default_incidents(spec, args.seed)
    files = write(spec, incidents, args.out / "fleet")
    total = sum(files.counts.values())
    print(
        f"simulated {total} events over {duration / 60:.0f} min of event time with "
        f"{len(incidents)} incidents ({', '.join(i.kind.value for i in incidents)})"
    )
    assert files.events is not None
    print("replaying through the detectors; alerts as they fire and resolve:")
    outcome = replay_files(
        [files.events],
        out=args.out,
        labels=files.labels,
        config=load_config(args.config),
        on_alert=printer(),
    )
    if outcome.summary is not None:
        print(describe(outcome.summary))
    took = time.perf_counter() - began
    print(f"done in {took:.1f} s; alerts: {outcome.paths['alerts']}")
    print(f"report: {outcome.paths['report'].resolve()}")
    return 0


class _Console:
    """Lines from the alert thread and the main thread, never interleaved mid-line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.began = time.monotonic()

    def say(self, text: str) -> None:
        with self._lock:
            print(text, flush=True)

    def stamp(self, at: float | None = None) -> str:
        s = int((time.monotonic() if at is None else at) - self.began)
        return f"[{s // 60}:{s % 60:02d}]"


def run_live(args: argparse.Namespace) -> int:
    from stream.broker import EmbeddedBroker
    from stream.commands._demo_live import (
        IncidentClock,
        Throughput,
        WorkerProcess,
        demo_fleet,
        warm_detectors,
    )
    from stream.commands.alerts import AlertWatcher, Seen
    from stream.settings import load_settings
    from stream.simulate.publish import (
        FleetPublisher,
        Pacer,
        PublishStats,
        live_start,
        publish_events,
        topics_for,
    )

    if args.speed <= 0:
        raise ValueError(f"--speed: must be positive, got {args.speed}")
    wall_s = 100.0 if args.duration is None else args.duration
    span_s = wall_s * args.speed
    # ~550 events/s at x10: well inside what one worker handles on a busy 2-core laptop.
    rate = 50.0 if args.rate is None else args.rate
    load_config(args.config)  # a bad config file fails here, before anything starts
    con = _Console()
    seen: list[Seen] = []

    def on_alert(s: Seen) -> None:
        seen.append(s)
        con.say(f"{con.stamp(s.received)} {alert_line(s.alert)}")

    con.say(
        f"llmwatch live demo: broker, worker, simulator ({rate:g} req/s, x{args.speed:g} "
        f"time) and alert console for {wall_s:.0f} s; Ctrl-C stops early"
    )
    interrupted = False
    failure: str | None = None
    stats: PublishStats | None = None
    clock: IncidentClock | None = None
    thru = Throughput()
    worker: WorkerProcess | None = None
    stopped: tuple[int | None, float] = (None, 0.0)
    ready_s = 0.0
    pacer = Pacer(args.speed)
    with contextlib.ExitStack() as stack:
        try:
            bootstrap = stack.enter_context(EmbeddedBroker())
            settings = load_settings(bootstrap_servers=bootstrap, security_protocol="PLAINTEXT")
            client = {"bootstrap.servers": bootstrap}
            publisher = FleetPublisher(client, topics_for(settings))
            publisher.ensure_topics([settings.topic_alerts, settings.topic_deadletter])
            worker = WorkerProcess(bootstrap, args.out, args.config)
            t0 = time.monotonic()
            worker.start()
            stack.callback(worker.stop)  # also on errors and a second ^C
            # Join the alerts consumer group while the worker starts up.
            watcher = AlertWatcher(client, settings.topic_alerts, on_alert)
            watcher.start()
            stack.callback(watcher.stop)
            warm_s = warm_detectors(args.config)
            worker.wait_ready()
            ready_s = time.monotonic() - t0
            con.say(
                f"{con.stamp()} broker {bootstrap}; worker up in {ready_s:.1f} s, detector "
                f"kernels warmed in {warm_s:.1f} s (metrics {worker.url('/metrics')}, "
                f"log {worker.log})"
            )
            spec, incidents = demo_fleet(
                args.seed, span_s, rate, live_start(time.time(), span_s, args.speed)
            )
            clock = IncidentClock(spec, incidents)
            con.say(
                f"{con.stamp()} streaming {span_s / 60:.0f} min of fleet time; incidents: "
                + ", ".join(
                    f"{i.kind.value} at +{i.start_offset_s / args.speed:.0f}s" for i in incidents
                )
            )
            last_status = [time.monotonic()]

            def on_tick(st: PublishStats) -> None:
                assert worker is not None
                worker.check_alive()
                thru.add(worker.metrics())
                if time.monotonic() - last_status[0] >= 15.0:
                    last_status[0] = time.monotonic()
                    con.say(
                        f"{con.stamp()} published {st.total:,} events, worker handled "
                        f"{thru.handled:,.0f}, alerts seen {len(seen)}"
                    )

            stats = publish_events(
                simulate(spec, incidents),
                publisher,
                pacer=pacer,
                on_event=clock.on_event,
                on_tick=on_tick,
            )
            publisher.flush(10.0)
            _drain(worker, thru, stats.delivered, seen)
        except (KeyboardInterrupt, RuntimeError) as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            failure = None if interrupted else str(exc)
            con.say(f"{con.stamp()} {failure or 'interrupted'}; stopping")
            with contextlib.suppress(NameError):
                stats = publisher.stats
                publisher.flush(5.0)
        if worker is not None:
            thru.add(worker.metrics())
            stopped = worker.stop()
    _summary(con, stats, thru, seen, clock, pacer, ready_s, stopped)
    _keep_alerts(args.out, seen)  # README: llmwatch-demo/alerts.jsonl
    if interrupted:
        return 130
    ok = (
        failure is None
        and stats is not None
        and stats.failed == 0
        and thru.handled >= stats.delivered
        and stopped[0] == 0
    )
    return 0 if ok else 1


def _keep_alerts(out: Path, seen: list[Any]) -> Path:
    """The alerts the console saw, one JSON per line: ``llmwatch replay``'s alerts.jsonl
    format, so what the notifier's stages made of them can be checked afterwards."""
    from schemas.models import dump_json

    path = out / "alerts.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(dump_json(s.alert) + b"\n" for s in seen))
    return path


def _drain(worker: Any, thru: Any, delivered: int, seen: list[Any]) -> None:
    """Wait (bounded) until the worker has consumed everything and the alerts have settled."""
    # Give a lagging worker time to catch up while it makes progress; stop when it stalls.
    deadline, last, moved = time.monotonic() + 60.0, -1.0, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - moved < 5.0:
        thru.add(worker.metrics())
        if thru.handled >= delivered:
            break
        if thru.handled > last:
            last, moved = thru.handled, time.monotonic()
        time.sleep(0.25)  # polling another process's /metrics
    quiet_since, n = time.monotonic(), len(seen)
    settle = time.monotonic() + 5.0
    while time.monotonic() < settle and time.monotonic() - quiet_since < 2.0:
        time.sleep(0.1)
        if len(seen) != n:
            quiet_since, n = time.monotonic(), len(seen)


def _summary(
    con: _Console,
    stats: Any,
    thru: Any,
    seen: list[Any],
    clock: Any,
    pacer: Any,
    ready_s: float,
    stopped: tuple[int | None, float],
) -> None:
    from schemas.models import AlertStatus

    con.say("--- summary ---")
    if stats is not None:
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.sent.items()))
        con.say(
            f"events published   {stats.total:,} ({kinds}); delivered {stats.delivered:,}, "
            f"failed {stats.failed:,}"
        )
    rate = thru.sustained()
    if rate is not None:
        per_busy = thru.handled / thru.busy_s if thru.busy_s > 0 else float("nan")
        con.say(
            f"worker handled     {thru.handled:,.0f} events, {rate[0]:,.0f} events/s sustained "
            f"over {rate[1]:.0f} s; batch processing {thru.busy_s:.1f} s in all "
            f"(~{per_busy:,.0f} events per busy second)"
        )
    if stats is not None and thru.handled < stats.delivered:
        # The embedded broker keeps only the newest few MB per partition: a worker that
        # falls that far behind never sees the rest. Say so rather than look complete.
        con.say(
            f"WARNING            the worker handled {thru.handled:,.0f} of "
            f"{stats.delivered:,} events: it fell behind (busy machine?), and the embedded "
            f"broker keeps only the newest few MB per partition; try a lower --speed or --rate"
        )
    from stream.commands._demo_live import notification_line

    firing = sum(1 for s in seen if s.alert.status is AlertStatus.FIRING)
    con.say(f"alerts seen        {firing} firing, {len(seen) - firing} resolved")
    if clock is not None:
        con.say(notification_line(seen, len(clock.reached) or len(clock.incidents)))
    if clock is not None:
        firsts = clock.first_alerts(seen)
        lat = []
        for i, inc in enumerate(clock.incidents):
            target = "/".join(inc.target.values())
            if i not in clock.reached:
                con.say(f"  {inc.kind.value:20} {target:48} not reached")
                continue
            hit = firsts.get(i)
            if hit is None:
                con.say(f"  {inc.kind.value:20} {target:48} no alert")
                continue
            lat.append(hit.received - clock.reached[i])
            # Split the wait: event time the detector needed vs. the pipeline's own delay.
            fired_t = hit.alert.starts_at.timestamp()
            detect_s = fired_t - (clock.spec.start.timestamp() + inc.start_offset_s)
            due = pacer.wall_at(fired_t)
            pipe = "" if due is None else f", pipeline {max(0.0, hit.received - due):.1f} s"
            con.say(
                f"  {inc.kind.value:20} {target:48} alert {lat[-1]:4.1f} s after its first "
                f"event ({hit.alert.detector}: {detect_s:.0f} s of fleet time{pipe})"
            )
        if lat:
            con.say(
                f"event->alert       {len(lat)}/{len(clock.incidents)} incidents alerted; wall "
                f"latency median {statistics.median(lat):.1f} s, max {max(lat):.1f} s"
            )
    first = thru.first_events_at()
    warm = f", first events handled {first - con.began:.0f} s into the demo" if first else ""
    con.say(f"worker start       ready in {ready_s:.1f} s{warm}")
    rc, took = stopped
    con.say(f"shutdown           worker exited {rc} in {took:.1f} s")
