"""The notifier worker: alerts topic -> pipeline (stream/alerting) -> dispatcher -> receivers.

The pipeline routes each alert, groups it, and at each group's flush holds what
inhibition, silences and acks hold; the dispatcher delivers the group notifications.
At least once, never twice: an alert's offset is committed only once every group that
took it has flushed and its notification was finished by its receiver (accepted or
dead-lettered); the ledger under ``state_dir/notify`` turns the re-read after a
restart into no-ops. A receiver that is down only holds its own lane; consumption
pauses when ``max_in_flight`` alerts are unfinished, which bounds memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from pathlib import Path

from confluent_kafka import Message
from pydantic import ValidationError

from connectors.notify import (
    Clock,
    DeliveryResult,
    Dispatcher,
    JsonFileLedger,
    Notifier,
    Outcome,
    Redactor,
    RetryPolicy,
    SystemClock,
)
from schemas.models import Alert
from schemas.notification import Notification
from stream.alerting.labels import alert_labels
from stream.alerting.pipeline import Flushed, Pipeline
from stream.alerting.silences import SilenceStore, silence_key
from stream.metrics import NotifierMetrics
from stream.settings import Settings, kafka_client_config

from .config import NotifyConfig, external_url_of
from .consumer import AlertConsumer
from .deadletters import dead_letter, reason_class, send_until_kept
from .intake import CatchUp, Settler, Token
from .kafka_io import AsyncProducer, KafkaIOError, TopicFollower
from .pipeline_metrics import PipelineMetrics
from .receivers import build_notifier, known_secrets
from .recent import RecentAlerts
from .shared import SharedLedger, SharedState

log = logging.getLogger("llmwatch.notify")

PRUNE_EVERY_S = 300.0


class NotifierService:
    def __init__(
        self,
        settings: Settings,
        config: NotifyConfig,
        *,
        clock: Clock | None = None,
        metrics: NotifierMetrics | None = None,
        consumer_config: dict[str, str] | None = None,
    ) -> None:
        if not settings.bootstrap_servers:
            raise ValueError("bootstrap_servers: the notifier needs the broker the worker uses")
        self.settings = settings
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.metrics = metrics or NotifierMetrics()
        self.state_dir = Path(settings.state_dir) / "notify"
        self.state = SilenceStore()
        external = external_url_of(config, settings)
        self.pipeline = Pipeline(
            config.route, config.inhibit_rules, self.state, external, config.quiet_on_resolve
        )
        self.flow = PipelineMetrics(self.metrics.registry, self.pipeline.stats)
        self.settler = Settler(self._done)
        # Deliveries and Slack messages of every replica, over the silences topic.
        self.shared = SharedState(self._publish_shared)
        self._partition_of: dict[str, int] = {}  # fingerprint -> partition it came from
        self.read_through = -math.inf  # the alerts topic is read up to this time
        self._lag_asked = -math.inf  # monotonic time of the last lag query
        self.catchup = CatchUp()
        self.redact = Redactor(known_secrets(settings, list(config.receivers)))
        self._kafka = kafka_client_config(settings)
        # Extra librdkafka properties for the alerts consumer (e.g. session.timeout.ms).
        self._consumer_config = {**config.consumer_properties, **(consumer_config or {})}
        self.dispatcher: Dispatcher | None = None
        self.recent: RecentAlerts | None = None
        self.consumer: AlertConsumer | None = None
        self.producer: AsyncProducer | None = None
        self._follower: TopicFollower | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.ready = False

    # -- start / stop -------------------------------------------------------------------
    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.producer = AsyncProducer(self._kafka)
        notifiers: list[Notifier] = [
            build_notifier(spec, self.settings, self.state_dir, self.clock, self.shared)
            for spec in self.config.receivers
        ]
        retry = self.config.retry
        self.dispatcher = Dispatcher(
            notifiers,
            SharedLedger(JsonFileLedger(self.state_dir / "ledger.jsonl"), self.shared),
            clock=self.clock,
            policy=RetryPolicy(base_s=retry.base_s, cap_s=retry.cap_s, deadline_s=retry.deadline_s),
        )
        failures = self.metrics.ledger_write_failures
        self.dispatcher.ledger_stats.on_failure = lambda lane: failures.labels(lane).inc()
        self.recent = RecentAlerts(self.state_dir / "active-alerts.json")
        # What was firing before a restart: its groups come back as already told.
        grace = self.config.resolve_timeout_s
        self.pipeline.restore(self.recent.told_of(), self.clock.now(), grace)
        topic = self.settings.topic_silences
        loop = asyncio.get_running_loop()
        parts = await loop.run_in_executor(None, self.producer.ensure_topic, topic)
        self._follower = TopicFollower(self._kafka, topic, parts)
        # Every silence and ack ever written, before the first alert is looked at.
        # Acks made while this instance was down are acted on too; the ledger drops repeats.
        loaded = await self._follower.load(self.apply_record)
        log.info("silences topic: %d record(s) loaded", loaded)
        self.consumer = AlertConsumer(
            {**self._kafka, **self._consumer_config},
            self.settings.topic_alerts,
            self.settings.notify_group,
        )
        await self.consumer.start()
        self._loops = [
            asyncio.create_task(self._consume_loop(), name="notify-consume"),
            asyncio.create_task(self._follower.follow(self.apply_record), name="notify-silences"),
        ]
        for task in self._loops:
            task.add_done_callback(self._loop_ended)
        self.ready = True

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # /healthz turns 503 so the orchestrator restarts us; say why here.
            log.error("%s stopped: %s", task.get_name(), self.redact(repr(task.exception())))

    @property
    def healthy(self) -> bool:
        """Started, and both the alerts and the silences loops still running."""
        return self.ready and all(not t.done() for t in self._loops)

    async def stop(self) -> None:
        """Stop consuming; unfinished deliveries are abandoned (re-read after restart)."""
        self.ready = False
        self._stopping.set()
        if self._follower is not None:
            self._follower.stop()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._loops, return_exceptions=True)
        if self.dispatcher is not None:
            await self.dispatcher.close()
            local = getattr(self.dispatcher.ledger, "local", self.dispatcher.ledger)
            if isinstance(local, JsonFileLedger):
                local.close()
        if self.recent is not None:
            self.recent.flush()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.consumer is not None:
            await self.consumer.close()
        if self._follower is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._follower.close)
        if self.producer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.producer.close)

    # -- silences and acks ----------------------------------------------------------------
    def apply_record(self, key: str, value: bytes | None) -> None:
        if SharedState.owns(key):  # another replica's delivery or Slack message
            skipped = self.shared.skipped
            self.shared.apply(key, value)
            if self.shared.skipped > skipped:
                self.metrics.silence_records_skipped.inc()
            return
        skipped = self.state.skipped
        change = self.state.apply(key, value)
        if self.state.skipped > skipped:
            self.metrics.silence_records_skipped.inc()
        self._refresh_state_gauges()
        if change.ack is not None:
            # The ack's groups are looked at on the next flush: a group whose firing
            # alerts are all acknowledged tells PagerDuty and Slack so.
            self.pipeline.touch(change.ack.fingerprint, self.clock.now())

    def _publish_shared(self, key: str, value: bytes | None) -> None:
        if self.producer is not None:
            self.producer.produce_nowait(self.settings.topic_silences, key.encode(), value)

    def _refresh_state_gauges(self) -> None:
        now = self.clock.now()
        self.metrics.active_silences.set(sum(1 for s in self.state.silences() if s.active(now)))
        self.metrics.active_acks.set(len(self.state.acks(now)))

    async def publish_state(self, key: str, value: bytes | None) -> None:
        """Write a silence/ack to the compacted topic, then apply it here at once."""
        assert self.producer is not None
        await self.producer.send(self.settings.topic_silences, key.encode(), value)
        self.apply_record(key, value)

    # -- the alerts topic ----------------------------------------------------------------
    async def _consume_loop(self) -> None:
        assert self.consumer is not None
        pruned = self.clock.now()
        flushed = time.monotonic()
        while not self._stopping.is_set():
            if self.recent is not None and time.monotonic() - flushed >= 1.0:
                flushed = time.monotonic()
                self.recent.flush()
            if self.clock.now() - pruned >= PRUNE_EVERY_S:
                pruned = self.clock.now()
                await self._prune(pruned)
            with self.consumer.lock:
                # The history fold holds one event per open alert until the history is
                # read; pausing for those would stop the read that releases them.
                in_flight = self.consumer.book.in_flight() - len(self.catchup)
            paused = await self.consumer.window(in_flight, self.config.max_in_flight)
            self.metrics.paused.set(1 if paused else 0)
            # Never take more than the window has room for (librdkafka keeps the rest).
            room = max(1, min(200, self.config.max_in_flight - in_flight))
            for msg in await self.consumer.poll(room):
                if msg.error() is None:
                    self._handle(msg)
                else:
                    log.warning("alerts topic: %s", msg.error())
            await self._note_read_through()
            self._drop_revoked()
            self.flush(self.clock.now())
            await self.consumer.commit()

    async def _note_read_through(self) -> None:
        """Before a posted alert may expire: is the alerts topic read to its end? (Asked
        of the broker, at most once a second, only while an expiry is due.) A resend of
        the alert waiting in a backlog must be read first."""
        assert self.consumer is not None
        now = self.clock.now()
        if not self.pipeline.expiring(now) or time.monotonic() - self._lag_asked < 1.0:
            return
        self._lag_asked = time.monotonic()
        lag = await self.consumer.lag_async()
        if lag and not any(lag.values()):  # everything the broker held at `now` is read
            self.read_through = now

    async def _prune(self, now: float) -> None:
        """Forget long-expired silences, here and (tombstones) on the compacted topic."""
        self.shared.prune(now)
        live = self.pipeline.episodes
        self.pipeline.stats.trim({ep.alert.alert_id for ep in live.values()})
        keep = set(live) | self.pipeline.pending()  # a pending resolve's partition, too
        for fp in [fp for fp in self._partition_of if fp not in keep]:
            del self._partition_of[fp]
        for sid in self.state.prune(now):
            try:
                await self.publish_state(silence_key(sid), None)
            except KafkaIOError as exc:
                log.warning("silence %s not tombstoned: %s", sid, exc)
                return

    def _handle(self, msg: Message) -> None:
        assert self.consumer is not None
        partition, offset = msg.partition() or 0, msg.offset() or 0
        raw = msg.value() or b""
        with self.consumer.lock:
            self.consumer.book.add(partition, offset, self.clock.now())
            fresh, self.consumer.history_end = self.consumer.history_end, {}
        for part, end in fresh.items():
            self.catchup.start(part, end)
        self.metrics.alerts_in.inc()
        try:
            alert = Alert.model_validate_json(raw)
        except ValidationError as exc:
            detail = f"not a valid alert: {exc.error_count()} error(s), first at " + ".".join(
                str(p) for p in exc.errors()[0]["loc"]
            )
            bad = DeliveryResult("-", "-", "-", Outcome.DEAD_LETTERED, detail=detail, attempts=0)
            self._spawn(self._finish_undecodable(bad, raw, partition, offset))
            if self.catchup.active(partition, offset):
                self.catchup.passed(partition, offset)
                self._release_open()
            return
        token = (partition, offset)
        if not self.catchup.active(partition, offset):
            self._ingest(alert, token)
            return
        for settled in self.catchup.take(alert, token):
            self._done(settled)
        self._release_open()

    def _release_open(self) -> None:
        """History read to its end: the alerts still open go into the pipeline."""
        for still_open, held in self.catchup.finished():
            self._ingest(still_open, held)

    def _ingest(self, alert: Alert, token: Token) -> None:
        assert self.recent is not None
        now = self.clock.now()
        self.recent.seen(alert, self.state.silenced_by(alert_labels(alert), now))
        self._partition_of[alert.fingerprint] = token[0]
        self.settler.hold(token, self.pipeline.ingest(alert, now, token))

    def _drop_revoked(self) -> None:
        """Partitions another replica took over: their alerts and groups are its now."""
        assert self.consumer is not None
        with self.consumer.lock:
            gone, self.consumer.revoked = self.consumer.revoked - self.consumer.assigned, set()
        if not gone:
            return
        fps = [fp for fp, p in self._partition_of.items() if p in gone]
        self.pipeline.forget(fps)
        for fp in fps:
            del self._partition_of[fp]
        for p in gone:
            self.settler.forget_partition(p)
            self.catchup.drop_partition(p)
        log.info("alerts: partitions %s revoked; %d alert(s) handed over", sorted(gone), len(fps))

    def flush(self, now: float) -> None:
        """Send what the groups due at ``now`` have to say; settle what they held."""
        assert self.dispatcher is not None and self.recent is not None
        # An API client's alert not posted again; only as of what is read (a resend may
        # wait in a backlog behind a restart or a burst).
        for ended in self.pipeline.expire(min(now, self.read_through)):
            self.recent.seen(ended, None)
            self.metrics.expired.inc()
        for flushed in self.pipeline.flush(now):
            self.flow.flushed(flushed)
            if flushed.held.get("silenced"):
                self.metrics.silenced.labels(flushed.receiver).inc(flushed.held["silenced"])
            if flushed.note is None:
                self._settle(flushed)
            else:
                future = self.dispatcher.submit(flushed.note)
                self._spawn(self._finish(flushed, flushed.note, future))
        self.flow.refresh()

    def _settle(self, flushed: Flushed) -> None:
        for token in flushed.tokens:
            self.settler.release(token)  # type: ignore[arg-type]

    async def _finish(
        self, flushed: Flushed, note: Notification, future: asyncio.Future[DeliveryResult]
    ) -> None:
        assert self.recent is not None
        started = asyncio.get_running_loop().time()
        result = await future
        m = self.metrics
        m.deliveries.labels(result.receiver, result.outcome.value).inc()
        m.retries.labels(result.receiver).inc(max(0, result.attempts - 1))
        m.delivery_seconds.labels(result.receiver).observe(
            asyncio.get_running_loop().time() - started
        )
        for item in note.alerts:
            self.recent.outcome(item.alert.fingerprint, result.receiver, result.outcome.value)
            self.recent.mark_told(item.alert)
        if result.outcome is Outcome.DEAD_LETTERED:
            await self._write_dead_letter(result, note.model_dump_json().encode(), None, None)
        self._settle(flushed)

    async def _finish_undecodable(
        self, result: DeliveryResult, raw: bytes, partition: int, offset: int
    ) -> None:
        await self._write_dead_letter(result, raw, partition, offset)
        self._done((partition, offset))

    async def _write_dead_letter(
        self, result: DeliveryResult, raw: bytes, partition: int | None, offset: int | None
    ) -> None:
        assert self.producer is not None
        topic, now = self.settings.topic_alerts, self.clock.now()
        record = dead_letter(result, raw, topic, partition, offset, self.redact, now)
        key = result.group_key.encode()
        await send_until_kept(
            self.producer, self.settings.topic_deadletter, key, record, self.redact
        )
        self.metrics.deadletter_writes.labels(reason_class(result)).inc()

    def _done(self, token: Token) -> None:
        if self.consumer is None:
            return
        with self.consumer.lock:
            self.consumer.book.done(*token)

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- for /metrics and tests ------------------------------------------------------------
    async def refresh_metrics(self) -> None:
        self._refresh_state_gauges()
        if self.dispatcher is not None:
            self.metrics.ledger_paused.set(len(self.dispatcher.ledger_stats.paused))
        if self.consumer is None:
            return
        with self.consumer.lock:
            in_flight = self.consumer.book.in_flight()
            oldest = self.consumer.book.oldest()
        self.metrics.in_flight.set(in_flight)
        self.metrics.oldest_undelivered.set(
            0.0 if oldest is None else max(0.0, self.clock.now() - oldest)
        )
        for partition, lag in (await self.consumer.lag_async()).items():
            self.metrics.consumer_lag.labels(str(partition)).set(lag)

    async def idle(self) -> None:
        """Wait until every consumed alert is finished (tests and graceful drains)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
