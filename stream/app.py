"""The Faust app factory: ingest agents, engine state table, idle timer, web views.

Nothing here runs at import time; ``create_app(settings, config)`` builds a fresh
app, so tests and the CLI each get their own with their own metrics registry.

The source topics bypass Faust's per-message streams: the consumer hands whole
fetches of raw bytes to one ingest loop (``stream.worker.consumer``). Per fetch and
source partition: decode + validate in bulk, send rejects to the dead-letter topic,
feed the partition's Engine, publish every alert transition on the alerts topic
keyed by fingerprint. Engine state goes to a changelog-backed table (see
``stream.worker.state`` for the checkpoint trade-off). One lock orders the loop,
the idle timer and the rebalance handlers, so a checkpoint never acks events
whose alerts are still unsent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import faust
from faust.types import TP

from schemas.models import Alert, DeadLetter, dump_json
from stream import compat
from stream.alerting.labels import topic_key
from stream.config import LlmwatchConfig
from stream.kafka09 import (
    TopicSpec,
    faust_broker_options,
    is_legacy,
    required_topics,
)
from stream.metrics import WorkerMetrics
from stream.settings import kafka_client_config
from stream.worker.consumer import BatchConsumer, BatchTransport, Fetched, Inbox
from stream.worker.engines import EnginePool
from stream.worker.home import add_home
from stream.worker.ingest import BatchProcessor
from stream.worker.recovery_guard import RecoveryGuard
from stream.worker.resets import OffsetResets
from stream.worker.source_guard import SourceGuard
from stream.worker.state import EngineStateTable, Progress
from stream.worker.warmup import HistoryWarmup, read_history
from stream.worker.watchdog import TrackedLock, Watchdog
from stream.worker.web import add_views

if TYPE_CHECKING:
    from stream.settings import Settings

RAW: faust.Schema[bytes, bytes] = faust.Schema(
    key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)
log = logging.getLogger("llmwatch.worker")


class WorkerApp(faust.App):
    """A Faust app whose consumer hands the source topics over in whole fetches."""

    # (source topics, inbox, fetch wait ms, Kafka 0.9 offsets on the consumer)
    diverted: tuple[set[str], Inbox, int, bool] | None = None
    # Called with the monotonic start of each commit that succeeded (BatchConsumer).
    on_committed: Callable[[float], None] | None = None

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        # BatchTransport makes every consumer of this app a BatchConsumer.
        assert isinstance(consumer, BatchConsumer)
        if self.diverted is not None:
            consumer.divert(*self.diverted)
        consumer.on_committed = self.on_committed
        return consumer


_Handler = TypeVar("_Handler", bound=Callable[..., Awaitable[None]])


def _receiver(signal: Any) -> Callable[[_Handler], _Handler]:
    """Connects a handler to a Faust signal. Faust types a receiver as taking any
    positional arguments; ours name the one argument their signal sends."""

    def connect(handler: _Handler) -> _Handler:
        signal.connect(handler)
        return handler

    return connect


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
    # Refuse to start, naming package and version, if an upgrade removed a private hook.
    compat.check_hooks(legacy=is_legacy(settings), rocksdb=settings.store.startswith("rocksdb"))
    app = WorkerApp(
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
        broker_max_poll_records=settings.batch_size,
        **faust_broker_options(settings),
    )
    table = app.Table(engine_table(opt.app_id), key_type=bytes, value_type=bytes)
    metrics = WorkerMetrics()
    pool = EnginePool(cfg, every_batches=opt.checkpoint_batches, every_s=opt.checkpoint_interval_s)

    def restore_failed(partition: int, reason: str) -> None:
        metrics.state_restore_failures.labels(reason).inc()
        pool.restore_failed.add(partition)

    state = EngineStateTable(table, check=pool.check, on_failure=restore_failed)
    processor = BatchProcessor(pool, metrics, load=state.load, idle_after_s=opt.idle_after_s)
    pool.warm = HistoryWarmup(
        read_history(kafka_client_config(settings)),
        {s.topic: s.kind for s in sources(settings)},
        state.trusted_offsets,
        max_rows=settings.warmup_max_rows,
        counter=metrics.warmup_rows,
    )
    parts = WorkerParts(
        settings, cfg, metrics, pool, processor, state, Progress(state), sources(settings)
    )
    app.llmwatch = parts  # type: ignore[attr-defined]

    alerts_topic = app.topic(settings.topic_alerts, schema=RAW)
    dead_topic = app.topic(settings.topic_deadletter, schema=RAW)
    progress = parts.progress
    owned: set[int] = set()  # source partition numbers assigned to this worker
    kinds = {s.topic: s.kind for s in parts.sources}
    inbox = Inbox(max_records=4 * settings.batch_size)
    busy = TrackedLock()  # one of: a batch, a tick, a rebalance handler, shutdown
    lost = OffsetResets(metrics)
    watchdog = Watchdog(busy)
    recovery_guard = RecoveryGuard(app)

    def next_needed(tp: TP) -> int | None:
        """The next offset of a source partition its engine needs (None: from the start)."""
        done = progress.done.get((tp.topic, tp.partition))
        if done is None:
            try:
                done = state.trusted_offsets(tp.partition).get(tp.topic)
            except Exception:  # unloadable: its first batch reports it
                return None
        return None if done is None else done + 1

    source_guard = SourceGuard(app, kinds, next_needed, waiting=inbox.holds)

    for src in parts.sources:
        # Subscribed so the group assigns them; their records never reach the conductor.
        app.topics.add(app.topic(src.topic, schema=RAW))
    app.diverted = (set(kinds), inbox, settings.fetch_wait_ms, is_legacy(settings))
    app.on_committed = lambda started: pool.flushed(started, lambda p: not state.unconfirmed(p))

    def ack(topic: str, partition: int, offset: int) -> None:
        consumer = app.consumer
        if isinstance(consumer, BatchConsumer):
            # Not before the snapshots that make the offset safe are on the broker.
            consumer.ack_through(TP(topic, partition), offset, state.unconfirmed(partition))

    progress.ack = ack

    async def send_out(alerts: Sequence[Alert], dead: Sequence[DeadLetter] = ()) -> None:
        for dl in dead:
            await dead_topic.send(key=None, value=dump_json(dl))
        for alert in alerts:
            # One key for all (topic_key): one notifier replica sees every alert, so a
            # cause holds symptoms of other alert names, and each alert stays in order.
            await alerts_topic.send(key=topic_key(alert), value=dump_json(alert))

    def checkpoint(partitions: Iterable[int]) -> list[int]:
        """Snapshot engines into the table and its changelog; returns the partitions
        whose held events may be acked (once what they produced is sent)."""
        wall = processor.clock()
        done = list(partitions)
        for p in done:
            eng = pool.engines.get(p)
            if eng is not None:
                snap = eng.snapshot()
                state.save(p, snap, progress.offsets(p))
                pool.saved(p, wall, snap)
                metrics.checkpoints.inc()
        return done

    async def checkpoint_now(partitions: Iterable[int], alerts: Sequence[Alert] = ()) -> None:
        done = checkpoint(partitions)
        await send_out(alerts)
        progress.release(done)

    async def handle(batch: Fetched) -> None:
        topic, partition = batch.tp.topic, batch.tp.partition
        seen = progress.fresh(topic, partition, batch.offsets)
        offsets = batch.offsets[seen:]
        if not offsets:
            return
        skipped = progress.skipped(topic, partition, offsets[0])
        if skipped:
            lost.reset(topic, partition, offsets[0], skipped)
        outcome = processor.process(
            kind=kinds[topic],
            topic=topic,
            partition=partition,
            raws=batch.raws[seen:],
            offsets=offsets,
        )
        progress.advance(topic, partition, offsets[-1])
        # Anything published: save at once, so that a crash replays (and repeats) it only
        # if it lands between these sends. No engine (all rejects): nothing to save.
        now = bool(outcome.alerts or outcome.dead_letters) or partition not in pool.engines
        done = checkpoint([partition]) if now else []
        await send_out(outcome.alerts, outcome.dead_letters)
        progress.release(done)

    async def ingest() -> None:
        size = settings.batch_size
        while True:
            fetched = await inbox.take(size, settings.batch_timeout_s)
            async with busy.held("batch"):
                for batch in fetched:
                    if batch.tp.partition not in owned:  # revoked meanwhile: the next owner's
                        continue
                    for i in range(0, len(batch.offsets), size):
                        part = Fetched(
                            batch.tp, batch.raws[i : i + size], batch.offsets[i : i + size]
                        )
                        await handle(part)
                await checkpoint_now(pool.due(processor.clock()))

    @app.task
    async def run_ingest() -> None:
        try:
            await ingest()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.exception("ingest loop failed")
            await app.crash(exc)

    @app.timer(opt.tick_s, name="llmwatch.tick")
    async def tick() -> None:
        async with busy.held("tick"):
            alerts = processor.advance_idle()
            wall = processor.clock()
            due = pool.dirty() if alerts else pool.due(wall)
            # Commits trail by one snapshot; a partition gone quiet saves once more so
            # that its commits catch up (both kept snapshots then cover its offsets).
            due = sorted(set(due) | set(pool.settled(progress.held(), wall)))
            await checkpoint_now(due, alerts)
        for (topic, partition), offset in list(progress.done.items()):
            try:
                hw = app.consumer.highwater(TP(topic, partition))
            except Exception:  # not assigned any more, or no fetch yet
                continue
            if hw is not None and hw >= 0:
                metrics.consumer_lag.labels(topic, str(partition)).set(max(0, hw - offset - 1))

    # Not under the lock: it is what watches the lock's holders.
    @app.timer(10.0, name="llmwatch.watchdog")
    async def watch() -> None:
        watchdog.check()
        await recovery_guard.check()
        for tp in await source_guard.check():
            metrics.source_reseeks.labels(tp.topic).inc()

    @_receiver(app.on_partitions_assigned)
    async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        owned.update(tp.partition for tp in assigned if tp.topic in kinds)

    @_receiver(app.on_rebalance_complete)
    async def on_recovered(sender: Any, **kwargs: Any) -> None:
        # Tables are recovered: load and check every owned partition's snapshot now, so
        # a takeover shows at once what was open (/alerts, /healthz "restored") and an
        # unreadable snapshot is reported at assignment, not at the next event.
        # The assignment, not ``owned``: Faust may finish a short recovery before it
        # sends on_partitions_assigned.
        mine = {tp.partition for tp in app.consumer.assignment() if tp.topic in kinds}
        async with busy.held("rebalance"):
            for p in sorted(mine):
                if p in pool.engines or p in pool.checked:
                    continue
                try:
                    state.resolve(p)
                except Exception:  # it is retried, and reported, at the partition's first batch
                    log.exception("partition %d: loading saved engine state failed", p)

    @_receiver(app.on_partitions_revoked)
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        gone = sorted({tp.partition for tp in revoked if tp.topic in kinds})
        owned.difference_update(gone)
        inbox.discard(set(gone))
        async with busy.held("rebalance"):
            await checkpoint_now([p for p in gone if p in pool.engines])
            processor.forget(gone)
            progress.forget(gone)
        # Faust flushed before this signal; the new owner must find these snapshots in
        # the changelog, and cannot be assigned until this handler returns.
        await app.producer.flush()

    @_receiver(app.on_before_shutdown)
    async def on_shutdown(sender: Any, **kwargs: Any) -> None:
        async with busy.held("shutdown"):
            await checkpoint_now(sorted(set(pool.dirty()) | set(progress.held())))

    add_views(app, processor, metrics, progress, owned, busy=busy, inbox=inbox, resets=lost)
    add_home(app, settings.console_url, settings.notify_web_port)  # / links the console
    return app
