"""Detection latency: wall time from producing the first anomalous event to its alert.

A simulated fleet whose event time is the wall clock (its start is "now") is
produced at a fixed rate to one real worker on the embedded broker. After a
warm-up, error bursts are injected one after another, each on a different
(gateway, model) series. For each injection the clock runs from the moment the
first failing-series event at or after the burst's start was handed to the
producer, to the moment the first firing alert naming that series arrives on the
alerts topic (read by a consumer in this process). The worker runs with
lifecycle ``for_s`` 0 (``--for-s``): the shipped 30 s is a paging policy that
adds exactly that much event time, so it is reported apart, not measured. Prints one JSON object
(p50, p99, max over the injections) and a table. Event time is the wall clock, so each
alert's ``starts_at`` splits its latency into the detector's evidence (event time until
the end of the batch that fired) and the service's pipeline delay after it.

The worker starts with no saved state and the warm-up is shorter than error_rate's
window half-life (120 s), so this measures young series: there the detector's baseline
holds the same rows as its window, and how a burst is cut into batches decides whether
it fires at all (issue #4; tests/stream/test_app_batching.py).

    .venv/bin/python -m benchmarks.detection_latency [--rate 20000] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks import _harness as h
from stream.broker import EmbeddedBroker
from stream.simulate import FleetSpec, Incident
from stream.simulate.spec import IncidentKind

TARGET_P99_S = 1.0
LEAD_S = 20.0  # time to start the worker and join its group before event time begins


class AlertTap(threading.Thread):
    """Reads the alerts topic in the background, stamping each alert's arrival."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-latency-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        self.consumer.subscribe([topic])
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            msg = self.consumer.poll(0.05)
            value = None if msg is None or msg.error() else msg.value()
            if value is not None:
                self.seen.append((time.time(), orjson.loads(value)))
        self.consumer.close()


def first_alert(
    seen: list[tuple[float, dict[str, Any]]], target: dict[str, str], after: float
) -> tuple[float, str, float] | None:
    """Arrival time, detector and ``starts_at`` (epoch s) of the first firing alert on
    ``target`` after ``after``."""
    for at, alert in seen:
        labels = alert.get("labels", {})
        if (
            at >= after
            and alert.get("status") == "firing"
            and all(labels.get(k) == v for k, v in target.items())
        ):
            starts = datetime.fromisoformat(str(alert["starts_at"])).timestamp()
            return at, str(alert.get("detector")), starts
    return None


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=20_000.0, help="events/s produced")
    ap.add_argument("--warmup-s", type=float, default=40.0)
    ap.add_argument("--injections", type=int, default=6)
    ap.add_argument("--gap-s", type=float, default=10.0, help="between injection starts")
    ap.add_argument("--severity", type=float, default=2.5, help="error_burst: 30%% x severity")
    ap.add_argument(
        "--for-s",
        type=float,
        default=0.0,
        help="lifecycle for_s; the shipped 30 s holds every alert back by policy, not by cost",
    )
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.rate, args.warmup_s, args.injections, args.gap_s = 300.0, 20.0, 2, 6.0

    spec0 = FleetSpec()
    series = [(g, m) for m in spec0.models for g in spec0.gateways]
    if args.injections > len(series):
        raise SystemExit(f"--injections: at most {len(series)} (one per gateway/model series)")
    incidents = [
        Incident(
            kind=IncidentKind.ERROR_BURST,
            start_offset_s=args.warmup_s + i * args.gap_s,
            duration_s=args.gap_s,
            severity=args.severity,
            target={"gateway": g, "model": m},
        )
        for i, (g, m) in enumerate(series[: args.injections])
    ]
    duration = args.warmup_s + args.injections * args.gap_s + 5.0
    # Event time is the wall clock from ``start``: leave time to generate the events
    # (about 20k/s here) and to start the worker.
    lead = LEAD_S + args.rate * duration / 20_000
    start = datetime.now(UTC) + timedelta(seconds=lead)
    spec = FleetSpec(
        seed=23,
        start=start,
        duration_s=duration,
        rate=args.rate,
        gpu_interval_s=3600.0,
        feedback_fraction=0.0,
    )
    t_begin = start.timestamp()
    offset_list: list[float] = []
    # The first event of each burst's series at or after its start (events come in
    # time order).
    first: dict[int, int] = {}

    def seen(index: int, e: dict[str, Any]) -> None:
        off = datetime.fromisoformat(e["ts"]).timestamp() - t_begin
        offset_list.append(off)
        for j, inc in enumerate(incidents):
            if (
                j not in first
                and off >= inc.start_offset_s
                and e["gateway"] == inc.target["gateway"]
                and e["model"] == inc.target["model"]
            ):
                first[j] = index

    keys, values = h.inference_payloads(spec, incidents, seen=seen)
    offsets = np.array(offset_list, dtype=np.float64)
    firsts = [first[j] for j in range(len(incidents))]
    ready_s = (datetime.now(UTC) - start).total_seconds()
    if ready_s > -LEAD_S / 2:
        raise SystemExit(f"generating {len(values)} events took too long; lower --rate")

    produced_at: dict[int, float] = {}
    with EmbeddedBroker() as bootstrap, tempfile.TemporaryDirectory(prefix="llmwatch-lat-") as tmp:
        work = Path(tmp)
        h.create_topics(bootstrap, h.WORKER_TOPICS)
        port = h.free_port()
        log = work / "worker.log"
        config = work / "llmwatch.yaml"
        config.write_text(f"lifecycle:\n  defaults:\n    for_s: {args.for_s}\n")
        proc, fh = h.start(
            ["-m", "stream.cli", "worker", "--loglevel", "warn", "--config", str(config)],
            h.worker_env(bootstrap, port, work / "state"),
            log,
        )
        tap = AlertTap(bootstrap, "llmwatch.alerts")
        tap.start()
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2})
        try:
            h.wait_for(
                lambda: h.http_get(f"http://127.0.0.1:{port}/healthz") is not None,
                proc,
                log,
                LEAD_S,
                "worker",
            )
            marks = set(firsts)
            behind = 0.0
            i, n = 0, len(values)
            while i < n:
                now = time.time() - t_begin
                if offsets[i] > now:
                    time.sleep(min(0.002, offsets[i] - now))
                    continue
                behind = max(behind, float(now - offsets[i]))
                # Everything due by now, in one go (the producer batches anyway).
                j = int(np.searchsorted(offsets, now, side="right"))
                for k in range(i, max(j, i + 1)):
                    producer.produce("llmwatch.inference", key=keys[k], value=values[k])
                    if k in marks:
                        produced_at[k] = time.time()
                producer.poll(0)
                i = max(j, i + 1)
            producer.flush(10)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if all(
                    first_alert(tap.seen, inc.target, produced_at[f])
                    for inc, f in zip(incidents, firsts, strict=True)
                ):
                    break
                time.sleep(0.1)  # the tap thread fills tap.seen
            text = h.http_get(f"http://127.0.0.1:{port}/metrics").decode()
            lag = h.metric_sum(text, "llmwatch_consumer_lag")
            consumed = h.metric_sum(text, "llmwatch_events_in_total")
            published = h.metric_sum(text, "llmwatch_alerts_total")
            rejected = h.metric_sum(text, "llmwatch_rejects_total")
        finally:
            tap.halt.set()
            h.stop(proc)
            fh.close()
            log_tail = log.read_text(errors="replace")[-1500:]
            tap.join(5)

    rows: list[dict[str, Any]] = []
    for inc, f in zip(incidents, firsts, strict=True):
        hit = first_alert(tap.seen, inc.target, produced_at[f])
        # Event time is the wall clock here, so the alert's starts_at (the last event
        # time of the batch that fired it) splits the latency: the detector's need for
        # evidence (event time), then the service's own delay after it (wall time).
        rows.append(
            {
                "target": f"{inc.target['gateway']}|{inc.target['model']}",
                "latency_s": None if hit is None else round(hit[0] - produced_at[f], 3),
                "detector": None if hit is None else hit[1],
                "evidence_s": None if hit is None else round(hit[2] - produced_at[f], 3),
                "pipeline_s": None if hit is None else round(hit[0] - hit[2], 3),
            }
        )
    lat: list[float] = [float(r["latency_s"]) for r in rows if r["latency_s"] is not None]
    evidence = [float(r["evidence_s"]) for r in rows if r["evidence_s"] is not None]
    pipeline = [float(r["pipeline_s"]) for r in rows if r["pipeline_s"] is not None]
    p99 = percentile(lat, 99)
    out = {
        "benchmark": "detection_latency",
        "rate_events_per_s": args.rate,
        "events": len(values),
        "injections": len(incidents),
        "detected": len(lat),
        "p50_s": round(percentile(lat, 50), 3),
        "p99_s": round(p99, 3),
        "max_s": round(max(lat), 3) if lat else None,
        "evidence_p50_s": round(percentile(evidence, 50), 3),
        "pipeline_p50_s": round(percentile(pipeline, 50), 3),
        "pipeline_max_s": round(max(pipeline), 3) if pipeline else None,
        "lifecycle_for_s": args.for_s,
        "alerts_seen": len(tap.seen),
        "producer_max_behind_s": round(behind, 3),
        "worker_lag_at_end": lag,
        "worker_consumed": consumed,
        "worker_alerts_published": published,
        "worker_rejects": rejected,
        "target_p99_s": TARGET_P99_S,
        "meets_target": bool(lat) and len(lat) == len(incidents) and p99 <= TARGET_P99_S,
        "per_injection": rows,
        **({"worker_log_tail": log_tail} if len(lat) < len(incidents) else {}),
        "quick": args.quick,
    }
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    for r in rows:
        sys.stdout.write(
            f"{r['target']:28s} {r['latency_s']!s:>8} s  {r['detector']}  "
            f"(evidence {r['evidence_s']} s + pipeline {r['pipeline_s']} s)\n"
        )
    sys.stdout.write(f"p50 {out['p50_s']} s  p99 {out['p99_s']} s at {args.rate:g} ev/s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
