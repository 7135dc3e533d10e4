"""``llmwatch topics``: list, print or create every topic the worker needs.

Workers never create topics themselves (``topic_allow_declare=False``); brokers
without CreateTopics (Kafka before 0.10.1) or with auto-creation off need them,
changelogs included, before the first worker starts.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream.kafka09 import TopicSpec
    from stream.settings import Settings


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "topics",
        help="print kafka-topics.sh lines for, or create, every topic the worker needs",
        description=(
            "Sources, alerts, dead letters, silences (compacted) and the engine-state "
            "changelog (compacted), each with LLMWATCH_PARTITIONS partitions. Default: "
            "print kafka-topics.sh commands. --create makes the missing ones through the "
            "Admin API (brokers 0.10.1+; for older ones use the printed lines)."
        ),
    )
    p.add_argument("--app-id", default="llmwatch", help="the worker's app id")
    p.add_argument(
        "--zookeeper",
        default=None,
        metavar="HOST:PORT",
        help="print --zookeeper lines (Kafka before 2.2) instead of --bootstrap-server "
        "(default: --bootstrap-server lines)",
    )
    p.add_argument("--replication", type=int, default=1, help="replication factor")
    p.add_argument("--create", action="store_true", help="create missing topics via Admin API")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream.app import worker_topics
    from stream.kafka09 import CreateTopicsUnsupported, ensure_topics, kafka_topics_commands
    from stream.settings import load_settings

    if args.replication < 1:
        raise ValueError("--replication: must be at least 1")
    settings = load_settings()
    specs = worker_topics(settings, args.app_id)
    if not args.create:
        bootstrap = settings.bootstrap_servers or "HOST:PORT"
        for line in kafka_topics_commands(
            specs, zookeeper=args.zookeeper, bootstrap=bootstrap, replication=args.replication
        ):
            print(line)
        return 0
    if not settings.bootstrap_servers:
        raise ValueError(
            "LLMWATCH_BOOTSTRAP_SERVERS: --create needs a broker to create topics on; the "
            "embedded one (llmwatch broker, llmwatch worker) needs no --create: it makes every "
            "worker topic with LLMWATCH_PARTITIONS partitions when it starts"
        )
    from stream.preflight import check_brokers

    check_brokers(settings)
    if _on_embedded(settings):
        return _check_embedded(settings, specs)
    try:
        done = ensure_topics(settings, specs, replication=args.replication)
    except (CreateTopicsUnsupported, RuntimeError) as exc:
        print(f"llmwatch topics: {exc}", file=sys.stderr)
        return 1
    for name, what in done.items():
        print(f"{what:8} {name}")
    return 0


def _metadata(settings: Settings) -> Any:
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    from stream.settings import kafka_client_config

    return AdminClient({**kafka_client_config(settings)}).list_topics(timeout=10)


def _on_embedded(settings: Settings) -> bool:
    from stream.broker import is_embedded

    # Brokers before 0.10 are never the embedded one, and do not answer librdkafka.
    return settings.broker_api_version is None and is_embedded(_metadata(settings).cluster_id)


def _check_embedded(settings: Settings, specs: list[TopicSpec]) -> int:
    """The embedded broker cannot create topics (no CreateTopics): say which exist, and why
    the others cannot be made here."""
    have = {n: len(t.partitions) for n, t in _metadata(settings).topics.items()}
    bad = 0
    for spec in specs:
        count = have.get(spec.name)
        if count == spec.partitions:
            print(f"{'exists':8} {spec.name}")
            continue
        bad += 1
        what = "missing" if count is None else f"has {count} partitions, not {spec.partitions}"
        print(f"{'cannot':8} {spec.name}: {what}", file=sys.stderr)
    if bad:
        print(
            "llmwatch topics: the embedded broker has no CreateTopics (it auto-creates a topic "
            "with 4 partitions on first use); restart `llmwatch broker` with the same "
            "LLMWATCH_PARTITIONS, LLMWATCH_TOPIC_* and --app-id: it makes these topics itself",
            file=sys.stderr,
        )
        return 1
    return 0
