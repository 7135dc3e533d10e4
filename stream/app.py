"""The Faust app factory: ingest agents, engine state table, idle timer, web views.

Nothing here runs at import time; ``create_app(settings, config)`` builds a fresh
app, so tests and the CLI each get their own with their own metrics registry.

Per batch (``take_events``, size and timeout from settings) and per source
partition: decode + validate in bulk, send rejects to the dead-letter topic, feed
the partition's Engine, publish every alert transition on the alerts topic keyed
by fingerprint. Engine state goes to a changelog-backed table (see
``stream.worker.state`` for the checkpoint trade-off).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import faust
from faust.types import TP

from schemas.models import dump_json
from stream.config import LlmwatchConfig
from stream.metrics import WorkerMetrics
from stream.worker.engines import EnginePool
from stream.worker.ingest import BatchProcessor, Outcome
from stream.worker.state import EngineStateTable
from stream.worker.web import add_views

if TYPE_CHECKING:
    from stream.settings import Settings

RAW = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


@dataclass(frozen=True)
class Source:
    kind: str  # decoder kind (schemas.columns)
    topic: str


@dataclass(frozen=True)
class WorkerOptions:
    """Worker tuning that is not deployment config; defaults suit production."""

    app_id: str = "llmwatch"
    checkpoint_batches: int = 50  # engine snapshot after this many batches...
    checkpoint_interval_s: float = 10.0  # ...or this long, whichever comes first
    idle_after_s: float = 5.0  # wall time without a batch before event time is advanced
    tick_s: float = 1.0
    web_host: str = "127.0.0.1"


@dataclass
class WorkerParts:
    """What the app's agents share; tests and the CLI reach it as ``app.llmwatch``."""

    settings: Settings
    config: LlmwatchConfig
    metrics: WorkerMetrics
    pool: EnginePool
    processor: BatchProcessor
    state: EngineStateTable
    sources: tuple[Source, ...]


def sources(settings: Settings) -> tuple[Source, ...]:
    return (
        Source("inference", settings.topic_inference),
        Source("gpu", settings.topic_gpu),
        Source("metric", settings.topic_metrics),
        Source("feedback", settings.topic_feedback),
    )


def broker_url(servers: str) -> str:
    hosts = [s.strip() for s in servers.split(",") if s.strip()]
    if not hosts:
        raise ValueError(
            "bootstrap_servers: no Kafka brokers configured; start an embedded one first "
            "(llmwatch worker does this when LLMWATCH_BOOTSTRAP_SERVERS is empty)"
        )
    return ";".join(f"kafka://{h}" for h in hosts)


def create_app(
    settings: Settings,
    config: LlmwatchConfig | None = None,
    options: WorkerOptions | None = None,
) -> faust.App:
    cfg = config if config is not None else LlmwatchConfig()
    opt = options if options is not None else WorkerOptions()
    app = faust.App(
        opt.app_id,
        broker=broker_url(settings.bootstrap_servers),
        store=settings.store,
        datadir=str(settings.state_dir),
        topic_allow_declare=False,
        topic_disable_leader=True,
        web_port=settings.web_port,
        web_bind=opt.web_host,
        web_host=opt.web_host,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.partitions,
    )
    table = app.Table(f"{opt.app_id}-engines", key_type=bytes, value_type=bytes)
    metrics = WorkerMetrics()
    pool = EnginePool(cfg, every_batches=opt.checkpoint_batches, every_s=opt.checkpoint_interval_s)
    state = EngineStateTable(table)
    processor = BatchProcessor(pool, metrics, load=state.load, idle_after_s=opt.idle_after_s)
    parts = WorkerParts(settings, cfg, metrics, pool, processor, state, sources(settings))
    app.llmwatch = parts  # type: ignore[attr-defined]

    alerts_topic = app.topic(settings.topic_alerts, schema=RAW)
    dead_topic = app.topic(settings.topic_deadletter, schema=RAW)
    last_offsets: dict[TP, int] = {}

    async def publish(outcome: Outcome) -> None:
        for dl in outcome.dead_letters:
            await dead_topic.send(key=None, value=dump_json(dl))
        for alert in outcome.alerts:
            await alerts_topic.send(key=alert.fingerprint.encode(), value=dump_json(alert))

    def checkpoint(partitions: Sequence[int]) -> None:
        wall = processor.clock()
        for p in partitions:
            eng = pool.engines.get(p)
            if eng is not None:
                state.save(p, eng.snapshot())
                pool.saved(p, wall)
                metrics.checkpoints.inc()

    def make_agent(src: Source) -> None:
        topic = app.topic(src.topic, schema=RAW)

        async def ingest(stream: Any) -> None:
            async for events in stream.take_events(
                settings.batch_size, within=settings.batch_timeout_s
            ):
                grouped: dict[int, list[Any]] = defaultdict(list)
                for ev in events:
                    grouped[ev.message.partition].append(ev)
                for partition, evs in sorted(grouped.items()):
                    offsets = [ev.message.offset for ev in evs]
                    outcome = processor.process(
                        kind=src.kind,
                        topic=src.topic,
                        partition=partition,
                        raws=[ev.value for ev in evs],
                        offsets=offsets,
                    )
                    await publish(outcome)
                    last_offsets[TP(src.topic, partition)] = offsets[-1]
                checkpoint(pool.due(processor.clock()))

        app.agent(topic, name=f"llmwatch.ingest.{src.kind}")(ingest)

    for src in parts.sources:
        make_agent(src)

    @app.timer(opt.tick_s, name="llmwatch.tick")
    async def tick() -> None:
        alerts = processor.advance_idle()
        for alert in alerts:
            await alerts_topic.send(key=alert.fingerprint.encode(), value=dump_json(alert))
        checkpoint(pool.due(processor.clock()))
        for tp, offset in list(last_offsets.items()):
            try:
                hw = app.consumer.highwater(tp)
            except Exception:  # not assigned any more, or no fetch yet
                continue
            if hw is not None and hw >= 0:
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                    max(0, hw - offset - 1)
                )

    source_topics = {s.topic for s in parts.sources}

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        gone = sorted({tp.partition for tp in revoked if tp.topic in source_topics})
        checkpoint([p for p in gone if p in pool.engines])
        processor.forget(gone)

    @app.on_before_shutdown.connect
    async def on_shutdown(sender: Any, **kwargs: Any) -> None:
        checkpoint(pool.dirty())

    add_views(app, processor, metrics)
    return app
