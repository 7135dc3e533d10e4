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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import faust
from faust.types import TP

from schemas.models import Alert, DeadLetter, dump_json
from stream.config import LlmwatchConfig
from stream.kafka09 import (
    TopicSpec,
    apply_aiokafka_shim,
    faust_broker_options,
    required_topics,
)
from stream.metrics import WorkerMetrics
from stream.worker.engines import EnginePool
from stream.worker.ingest import BatchProcessor
from stream.worker.state import EngineStateTable, Progress
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
    # How long the group waits for a silent worker (a crashed one) before handing its
    # partitions to the others; Kafka 0.9 also waits this long for every member to
    # rejoin a rebalance.
    session_timeout_s: float = 60.0


@dataclass
class WorkerParts:
    """What the app's agents share; tests and the CLI reach it as ``app.llmwatch``."""

    settings: Settings
    config: LlmwatchConfig
    metrics: WorkerMetrics
    pool: EnginePool
    processor: BatchProcessor
    state: EngineStateTable
    progress: Progress
    sources: tuple[Source, ...]


def sources(settings: Settings) -> tuple[Source, ...]:
    return (
        Source("inference", settings.topic_inference),
        Source("gpu", settings.topic_gpu),
        Source("metric", settings.topic_metrics),
        Source("feedback", settings.topic_feedback),
    )


def engine_table(app_id: str) -> str:
    return f"{app_id}-engines"


def worker_topics(settings: Settings, app_id: str = "llmwatch") -> list[TopicSpec]:
    """Every topic a worker with this app id needs, changelog included (see stream.kafka09)."""
    return required_topics(settings, app_id, [engine_table(app_id)])


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
    apply_aiokafka_shim(settings)  # only for 0.9-era brokers; see stream.kafka09
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
        # Faust would wait on a rebalance for every event to be acked; ours are acked
        # only at checkpoints, which the revoke handler below takes itself.
        stream_wait_empty=False,
        broker_session_timeout=opt.session_timeout_s,
        broker_heartbeat_interval=min(3.0, opt.session_timeout_s / 3),
        **faust_broker_options(settings),
    )
    table = app.Table(engine_table(opt.app_id), key_type=bytes, value_type=bytes)
    metrics = WorkerMetrics()
    pool = EnginePool(cfg, every_batches=opt.checkpoint_batches, every_s=opt.checkpoint_interval_s)
    state = EngineStateTable(table)
    processor = BatchProcessor(pool, metrics, load=state.load, idle_after_s=opt.idle_after_s)
    parts = WorkerParts(
        settings, cfg, metrics, pool, processor, state, Progress(state), sources(settings)
    )
    app.llmwatch = parts  # type: ignore[attr-defined]

    alerts_topic = app.topic(settings.topic_alerts, schema=RAW)
    dead_topic = app.topic(settings.topic_deadletter, schema=RAW)
    progress = parts.progress
    owned: set[int] = set()  # source partition numbers assigned to this worker
    source_topics = {s.topic for s in parts.sources}

    async def send_out(alerts: Sequence[Alert], dead: Sequence[DeadLetter] = ()) -> None:
        for dl in dead:
            await dead_topic.send(key=None, value=dump_json(dl))
        for alert in alerts:
            await alerts_topic.send(key=alert.fingerprint.encode(), value=dump_json(alert))

    def checkpoint(partitions: Iterable[int]) -> list[int]:
        """Snapshot engines into the table and its changelog; returns the partitions
        whose held events may be acked (once what they produced is sent)."""
        wall = processor.clock()
        done = list(partitions)
        for p in done:
            eng = pool.engines.get(p)
            if eng is not None:
                state.save(p, eng.snapshot(), progress.offsets(p))
                pool.saved(p, wall)
                metrics.checkpoints.inc()
        return done

    async def checkpoint_now(partitions: Iterable[int], alerts: Sequence[Alert] = ()) -> None:
        done = checkpoint(partitions)
        await send_out(alerts)
        progress.release(done)

    async def handle(kind: str, topic: str, partition: int, evs: list[Any]) -> None:
        progress.hold(partition, evs)
        fresh = progress.fresh(topic, partition, evs)
        if not fresh:
            return
        offsets = [ev.message.offset for ev in fresh]
        outcome = processor.process(
            kind=kind,
            topic=topic,
            partition=partition,
            raws=[ev.value for ev in fresh],
            offsets=offsets,
        )
        progress.advance(topic, partition, offsets[-1])
        # Anything published: save at once, so that a crash replays (and repeats) it only
        # if it lands between these sends. No engine (all rejects): nothing to save.
        now = bool(outcome.alerts or outcome.dead_letters) or partition not in pool.engines
        done = checkpoint([partition]) if now else []
        await send_out(outcome.alerts, outcome.dead_letters)
        progress.release(done)

    def make_agent(src: Source) -> None:
        topic = app.topic(src.topic, schema=RAW)

        async def ingest(stream: Any) -> None:
            # noack_take: an event is acked only once a snapshot holds its effect.
            async for events in stream.noack_take(
                settings.batch_size, within=settings.batch_timeout_s
            ):
                grouped: dict[int, list[Any]] = defaultdict(list)
                for ev in events:
                    grouped[ev.message.partition].append(ev)
                for partition, evs in sorted(grouped.items()):
                    if partition in owned:  # else revoked meanwhile: the next owner's
                        await handle(src.kind, src.topic, partition, evs)
                await checkpoint_now(pool.due(processor.clock()))

        app.agent(topic, name=f"llmwatch.ingest.{src.kind}")(ingest)

    for src in parts.sources:
        make_agent(src)

    @app.timer(opt.tick_s, name="llmwatch.tick")
    async def tick() -> None:
        alerts = processor.advance_idle()
        await checkpoint_now(pool.dirty() if alerts else pool.due(processor.clock()), alerts)
        for (topic, partition), offset in list(progress.done.items()):
            try:
                hw = app.consumer.highwater(TP(topic, partition))
            except Exception:  # not assigned any more, or no fetch yet
                continue
            if hw is not None and hw >= 0:
                metrics.consumer_lag.labels(topic, str(partition)).set(max(0, hw - offset - 1))

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        owned.update(tp.partition for tp in assigned if tp.topic in source_topics)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        gone = sorted({tp.partition for tp in revoked if tp.topic in source_topics})
        owned.difference_update(gone)
        await checkpoint_now([p for p in gone if p in pool.engines])
        processor.forget(gone)
        progress.forget(gone)
        # Faust flushed before this signal; the new owner must find these snapshots in
        # the changelog, and cannot be assigned until this handler returns.
        await app.producer.flush()

    @app.on_before_shutdown.connect
    async def on_shutdown(sender: Any, **kwargs: Any) -> None:
        await checkpoint_now(sorted(set(pool.dirty()) | set(progress.held())))

    add_views(app, processor, metrics, progress, owned)
    return app
