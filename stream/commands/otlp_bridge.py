"""``llmwatch otlp-bridge``: OTLP GenAI spans from the Collector's Kafka topic to events."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from schemas.durations import duration_arg

# The worker serves on 6066 and the notifier on 6067; the bridge's default is the next one
# (not in stream.otlp_bridge_web: --help must not import prometheus_client).
DEFAULT_PORT = 6068


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "otlp-bridge",
        help="turn OTLP GenAI spans (OpenTelemetry Collector Kafka exporter) into events",
        description=(
            "Consumes the topic the Collector's Kafka exporter writes traces to, turns each "
            "GenAI inference span into an inference event (OpenTelemetry GenAI semantic "
            "conventions, and the older gen_ai.system / llm.* names), publishes it keyed by "
            "model to the inference topic, and dead-letters payloads that do not decode."
        ),
    )
    p.add_argument("--topic", default="otlp_spans", help="source topic (default: otlp_spans)")
    p.add_argument(
        "--encoding",
        choices=("otlp_proto", "otlp_json"),
        default="otlp_proto",
        help="the exporter's encoding (default: otlp_proto)",
    )
    p.add_argument(
        "--group", default="llmwatch-otlp-bridge", help="consumer group (default: %(default)s)"
    )
    p.add_argument(
        "--duration",
        type=duration_arg,
        default=None,
        help="stop after e.g. 10m (default: run until Ctrl-C)",
    )
    p.add_argument(
        "--bootstrap", default=None, help="host:port[,...] (default: LLMWATCH_BOOTSTRAP_SERVERS)"
    )
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="/metrics and /healthz port (default: %(default)s; 0: any free one)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from connectors.otlp_bridge import OtlpBridge
    from stream.otlp_bridge_web import bridge_registry, serve
    from stream.settings import kafka_client_config, load_settings

    overrides = {"bootstrap_servers": args.bootstrap} if args.bootstrap else {}
    settings = load_settings(**overrides)
    if not settings.bootstrap_servers:
        raise ValueError("bootstrap_servers: pass --bootstrap or set LLMWATCH_BOOTSTRAP_SERVERS")
    bridge = OtlpBridge(
        kafka_client_config(settings),
        source_topic=args.topic,
        encoding=args.encoding,
        inference_topic=settings.topic_inference,
        deadletter_topic=settings.topic_deadletter,
        group=args.group,
    )
    server = serve(bridge_registry(lambda: bridge.stats), lambda: bridge.running, args.port)
    port = server.server_address[1]
    print(
        f"llmwatch otlp-bridge: {args.topic} ({args.encoding}), /metrics on port {port}",
        file=sys.stderr,
        flush=True,
    )
    # Containers stop with SIGTERM: finish the batch in hand (acked, committed), leave the
    # group (its partitions move at once, not after the session timeout), print the counts.
    halt = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: halt.set())
    try:
        bridge.run(args.duration, stop=halt)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        bridge.close()
        server.shutdown()
        s = bridge.stats
        print(
            f"llmwatch otlp-bridge: {s.messages} messages, {s.spans} spans, {s.events} events, "
            f"{s.skipped} non-GenAI spans skipped, {s.invalid_spans} invalid spans, "
            f"{s.dead_lettered} messages dead-lettered",
            file=sys.stderr,
        )
    return 0
