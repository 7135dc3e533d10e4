"""``llmwatch otlp-bridge``'s /metrics and /healthz, on a small stdlib HTTP server.

The counts have one home, ``OtlpBridge.stats``; the collector here reads them at scrape
time rather than keeping a second set of counters in step. The registry is injectable,
as in ``stream.metrics``, so tests and several bridges in one process never collide.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from connectors.otlp_bridge import BridgeStats
from stream.metrics import CONTENT_TYPE_LATEST, render


class BridgeCollector(Collector):
    """Prometheus families over a bridge's ``BridgeStats`` (read when scraped)."""

    def __init__(self, stats: Callable[[], BridgeStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        messages = CounterMetricFamily(
            "llmwatch_otlp_messages",
            "OTLP messages consumed and committed, by outcome (dead_lettered: the message, "
            "or some of its GenAI spans, went to the dead-letter topic)",
            labels=["outcome"],
        )
        messages.add_metric(["published"], s.messages - s.dead_lettered)
        messages.add_metric(["dead_lettered"], s.dead_lettered)
        yield messages
        spans = CounterMetricFamily(
            "llmwatch_otlp_spans",
            "Spans in committed OTLP messages, by outcome",
            labels=["outcome"],
        )
        spans.add_metric(["published"], s.events)
        spans.add_metric(["skipped_non_genai"], s.skipped)
        spans.add_metric(["invalid"], s.invalid_spans)
        yield spans
        yield CounterMetricFamily(
            "llmwatch_otlp_events_published",
            "Inference events the broker acknowledged on the inference topic",
            value=s.events,
        )
        yield CounterMetricFamily(
            "llmwatch_otlp_produce_failures",
            "Events and dead letters the broker failed or did not acknowledge (the batch "
            "was left uncommitted and the bridge stopped)",
            value=s.produce_failures,
        )
        if s.lag >= 0:  # absent until the first fetch says where the topic ends
            yield GaugeMetricFamily(
                "llmwatch_otlp_consumer_lag_messages",
                "Messages on the OTLP source topic not yet consumed by this bridge, summed "
                "over its partitions (as of its last fetch)",
                value=s.lag,
            )
        yield GaugeMetricFamily(
            "llmwatch_otlp_last_commit_timestamp_seconds",
            "Unix time of the bridge's last offset commit (0: none yet)",
            value=s.last_commit,
        )


def bridge_registry(
    stats: Callable[[], BridgeStats], registry: CollectorRegistry | None = None
) -> CollectorRegistry:
    reg = registry if registry is not None else CollectorRegistry()
    reg.register(BridgeCollector(stats))
    return reg


def serve(
    registry: CollectorRegistry, running: Callable[[], bool], port: int, host: str = "0.0.0.0"
) -> ThreadingHTTPServer:
    """Start /metrics and /healthz (200 while ``running()``, else 503) on a daemon thread;
    ``server_address[1]`` is the bound port (pass 0 for any free one)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, render(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                up = running()
                self._reply(200 if up else 503, b"ok\n" if up else b"stopped\n", "text/plain")
            else:
                self._reply(404, b"not found\n", "text/plain")

        def _reply(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every 15 s is not news

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="bridge-http", daemon=True).start()
    return server
