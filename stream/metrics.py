"""Prometheus metrics of one worker, in a registry of its own.

Each worker (and each test) gets a fresh ``WorkerMetrics``, so nothing is shared
through prometheus-client's global default registry and two apps in one process
never collide on metric names.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from stream.fleet_metrics import FleetMetrics, group_ids, group_quantiles

__all__ = [
    "CONTENT_TYPE_LATEST",
    "FleetMetrics",
    "NotifierMetrics",
    "WorkerMetrics",
    "group_ids",
    "group_quantiles",
    "reason_class",
    "render",
]

_BATCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# Whole-message failures ("$") carry no field, so their class comes from the reason.
_WHOLE_MESSAGE = (
    ("not valid JSON", "json"),
    ("expected a JSON object", "not_object"),
    ("over the limit", "too_large"),
    ("not bytes", "not_bytes"),
)


class _NoCreated(Collector):
    """A registry's metrics without the ``_created`` samples prometheus-client adds to
    counters and histograms: in the text format they are separate gauges with no unit,
    which ``promtool check metrics`` flags, and no dashboard or rule reads them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


def render(registry: CollectorRegistry) -> bytes:
    """The /metrics body of a registry, without ``_created`` series."""
    return generate_latest(_NoCreated(registry))


def reason_class(reason: str, location: str) -> str:
    """A bounded label for a reject: the offending top-level field, or what was wrong.

    Field names come from the wire models, so the label set stays small whatever
    the messages contain.
    """
    if location and location != "$":
        return location.split(".", 1)[0]
    for needle, name in _WHOLE_MESSAGE:
        if needle in reason:
            return name
    return "invalid"


class WorkerMetrics:
    """Every metric the worker exports; ``render()`` is the /metrics body."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events_in = Counter(
            "llmwatch_events_in", "Messages consumed, by source topic", ["topic"], registry=r
        )
        self.events_accepted = Counter(
            "llmwatch_events_accepted",
            "Messages that decoded and reached the detectors",
            ["topic"],
            registry=r,
        )
        self.rejects = Counter(
            "llmwatch_rejects",
            "Messages sent to the dead-letter topic, by source topic and reason class",
            ["topic", "reason_class"],
            registry=r,
        )
        self.decode_paths = Counter(
            "llmwatch_decode_messages",
            "Messages by decode path: columnar (the fast one), per_message (a batch with an "
            "unknown field, a newline in a message or invalid JSON), reference (rows the "
            "pydantic models re-check)",
            ["topic", "path"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "llmwatch_batch_seconds",
            "Wall time to decode, score and publish one batch",
            ["topic"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "llmwatch_batch_size",
            "Messages per batch",
            ["topic"],
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
            registry=r,
        )
        self.detector_seconds = Histogram(
            "llmwatch_detector_seconds",
            "Wall time in the engine (detectors and alert lifecycle) per batch, by event kind",
            ["kind"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "llmwatch_consumer_lag",
            "Messages between the last one processed and the partition's high watermark",
            ["topic", "partition"],
            registry=r,
        )
        self.active_series = Gauge(
            "llmwatch_active_series",
            "Series with learned state, summed over this worker's engines, by detector",
            ["detector"],
            registry=r,
        )
        self.alerts = Counter(
            "llmwatch_alerts",
            "Alert events published, by status and severity",
            ["status", "severity"],
            registry=r,
        )
        self.active_alerts = Gauge(
            "llmwatch_active_alerts",
            "Alerts currently firing on this worker, by severity",
            ["severity"],
            registry=r,
        )
        self.checkpoints = Counter(
            "llmwatch_checkpoints",
            "Engine snapshots written to the state changelog",
            registry=r,
        )
        self.engines = Gauge(
            "llmwatch_engines", "Source partitions with a live engine on this worker", registry=r
        )
        self.watermark = Gauge(
            "llmwatch_watermark_seconds",
            "Highest event time seen by this worker's engines (epoch seconds)",
            registry=r,
        )
        self.fleet = FleetMetrics(r)
        self._add_loss_metrics(r)

    def _add_loss_metrics(self, r: CollectorRegistry) -> None:
        """Every way input can be set aside or skipped: never silent (issue 16)."""
        self.poison = Counter(
            "llmwatch_poison_messages",
            "Messages isolated because decoding (stage=decode) or the engine (stage=engine) "
            "raised on them alone; each went to the dead-letter topic",
            ["topic", "stage"],
            registry=r,
        )
        self.engine_failures = Counter(
            "llmwatch_engine_batch_failures",
            "Batches the engine raised on, by outcome: retried (the one retry on a rebuilt "
            "engine succeeded) or bisected (cut down to the rows that fail); outcome=tick "
            "(no topic): advancing a quiet partition's event time raised",
            ["topic", "outcome"],
            registry=r,
        )
        self.state_restore_failures = Counter(
            "llmwatch_state_restore_failures",
            "Saved engine snapshots that could not be loaded, by what was wrong "
            "(manifest, chunk_missing, digest, decompress, engine)",
            ["reason"],
            registry=r,
        )
        for reason in ("manifest", "chunk_missing", "digest", "decompress", "engine"):
            self.state_restore_failures.labels(reason)  # 0 until one fails: rules see it
        self.warmup_rows = Counter(
            "llmwatch_warmup_rows",
            "History rows a detector that restored fresh re-learned from (upgrade warm-up)",
            ["detector"],
            registry=r,
        )
        self.offset_resets = Counter(
            "llmwatch_offset_resets",
            "Offset-out-of-range resets of a source partition (retention overran the worker)",
            ["topic"],
            registry=r,
        )
        self.offsets_skipped = Counter(
            "llmwatch_offsets_skipped",
            "Messages skipped by offset-out-of-range resets: deleted by retention unread",
            ["topic"],
            registry=r,
        )
        self.source_reseeks = Counter(
            "llmwatch_source_reseeks",
            "Source partitions found stuck (records to read, none arriving) and sought again",
            ["topic"],
            registry=r,
        )

    def render(self) -> bytes:
        return render(self.registry)


class NotifierMetrics:
    """Every metric the notifier (``llmwatch notify``) exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.alerts_in = Counter(
            "llmwatch_notify_alerts_in", "Alert events consumed from the alerts topic", registry=r
        )
        self.expired = Counter(
            "llmwatch_notify_alerts_expired",
            "Firing alerts resolved at their own endsAt (posted to /api/v2/alerts and not "
            "posted again: Alertmanager's rule)",
            registry=r,
        )
        self.deliveries = Counter(
            "llmwatch_notify_deliveries",
            "Finished deliveries, by receiver and outcome (sent, deduplicated, dead_lettered)",
            ["receiver", "outcome"],
            registry=r,
        )
        self.retries = Counter(
            "llmwatch_notify_retries",
            "Delivery attempts after the first, by receiver",
            ["receiver"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "llmwatch_notify_delivery_seconds",
            "Wall time from first attempt to final outcome, by receiver",
            ["receiver"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
            registry=r,
        )
        self.consumer_lag = Gauge(
            "llmwatch_notify_consumer_lag",
            "Alert events not yet consumed by the notifier",
            ["partition"],
            registry=r,
        )
        self.silenced = Counter(
            "llmwatch_notify_silenced",
            "Deliveries not made because a silence matched, by receiver",
            ["receiver"],
            registry=r,
        )
        self.in_flight = Gauge(
            "llmwatch_notify_in_flight",
            "Alert events consumed but not yet finished by every receiver",
            registry=r,
        )
        self.oldest_undelivered = Gauge(
            "llmwatch_notify_oldest_undelivered_seconds",
            "Age of the oldest alert event some receiver has not finished (0 when none)",
            registry=r,
        )
        self.paused = Gauge(
            "llmwatch_notify_paused",
            "1 while consumption is paused because the in-flight window is full",
            registry=r,
        )
        self.active_silences = Gauge(
            "llmwatch_notify_active_silences", "Silences in force now", registry=r
        )
        self.active_acks = Gauge(
            "llmwatch_notify_active_acks", "Unexpired acknowledgements", registry=r
        )
        self.deadletter_writes = Counter(
            "llmwatch_notify_deadletter_writes",
            "Records written to the dead-letter topic by the notifier, by reason class",
            ["reason_class"],
            registry=r,
        )
        self.ledger_write_failures = Counter(
            "llmwatch_notify_ledger_write_failures",
            "Delivery-ledger writes refused (disk full, I/O error); the lane waits and retries",
            ["receiver"],
            registry=r,
        )
        self.ledger_paused = Gauge(
            "llmwatch_notify_ledger_paused_receivers",
            "Receivers whose lane waits because the delivery ledger cannot be written",
            registry=r,
        )
        self.silence_records_skipped = Counter(
            "llmwatch_notify_silence_records_skipped",
            "Silences-topic records that did not parse (logged and skipped)",
            registry=r,
        )

    def render(self) -> bytes:
        return render(self.registry)
