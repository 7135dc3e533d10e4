"""The notifier worker: alerts topic -> silences/acks -> dispatcher -> receivers.

At least once, never twice: an alert's offset is committed only once every routed
receiver finished it (accepted or dead-lettered); the ledger under
``state_dir/notify`` turns the re-read after a restart into no-ops. A receiver that
is down only holds its own lane; consumption pauses when ``max_in_flight`` alerts
are unfinished, which bounds memory during a long outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
    Router,
    SystemClock,
)
from connectors.notify.routing import alert_labels
from schemas.models import Alert, AlertStatus
from stream.metrics import NotifierMetrics
from stream.settings import Settings, kafka_client_config

from .config import NotifyConfig
from .consumer import AlertConsumer
from .deadletters import dead_letter, reason_class
from .kafka_io import AsyncProducer, KafkaIOError, TopicFollower
from .receivers import build_notifier, known_secrets
from .recent import RecentAlerts
from .state import SilenceState, silence_key

log = logging.getLogger("llmwatch.notify")

# Receivers that can show an acknowledgement (PagerDuty acknowledge, Slack message update).
ACK_TYPES = frozenset({"pagerduty", "slack_bot", "console"})
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
        self.state = SilenceState()
        self.redact = Redactor(known_secrets(settings, list(config.receivers)))
        self._types = {r.name: r.type for r in config.receivers}
        self._kafka = kafka_client_config(settings)
        # Extra librdkafka properties for the alerts consumer (e.g. session.timeout.ms).
        self._consumer_config = dict(consumer_config or {})
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
        notifiers: list[Notifier] = [
            build_notifier(spec, self.settings, self.state_dir, self.clock)
            for spec in self.config.receivers
        ]
        retry = self.config.retry
        self.dispatcher = Dispatcher(
            notifiers,
            Router(self.config.routing()),
            JsonFileLedger(self.state_dir / "ledger.jsonl"),
            clock=self.clock,
            policy=RetryPolicy(base_s=retry.base_s, cap_s=retry.cap_s, deadline_s=retry.deadline_s),
        )
        self.recent = RecentAlerts(self.state_dir / "active-alerts.json")
        self.producer = AsyncProducer(self._kafka)
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
            if isinstance(self.dispatcher.ledger, JsonFileLedger):
                self.dispatcher.ledger.close()
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
        change = self.state.apply(key, value)
        self._refresh_state_gauges()
        if change.ack is not None:
            self._spawn(self._acknowledge(change.ack.fingerprint, change.ack.alert_id))

    def _refresh_state_gauges(self) -> None:
        now = self.clock.now()
        self.metrics.active_silences.set(sum(1 for s in self.state.silences() if s.active(now)))
        self.metrics.active_acks.set(len(self.state.acks(now)))

    async def publish_state(self, key: str, value: bytes | None) -> None:
        """Write a silence/ack to the compacted topic, then apply it here at once."""
        assert self.producer is not None
        await self.producer.send(self.settings.topic_silences, key.encode(), value)
        self.apply_record(key, value)

    async def _acknowledge(self, fingerprint: str, alert_id: str) -> None:
        """Tell the receivers that got this firing alert that someone owns it."""
        assert self.recent is not None and self.dispatcher is not None
        live = self.state.ack_for(fingerprint, self.clock.now())
        if live is None or live.alert_id != alert_id:
            return  # expired, or replaced by a later ack
        alert = self.recent.get(fingerprint)
        if alert is None or alert.alert_id != alert_id or alert.status != AlertStatus.FIRING:
            return
        acked = alert.model_copy(
            update={"annotations": {**alert.annotations, "acknowledged": "true"}}
        )
        only = [
            n
            for n in self.dispatcher.route(alert)
            if self._types.get(n) in ACK_TYPES and self.dispatcher.delivered(n, alert, "firing")
        ]
        if only:
            await self._finish(acked, self.dispatcher.submit(acked, only), None, None)

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
                in_flight = self.consumer.book.in_flight()
            paused = await self.consumer.window(in_flight, self.config.max_in_flight)
            self.metrics.paused.set(1 if paused else 0)
            # Never take more than the window has room for (librdkafka keeps the rest).
            room = max(1, min(200, self.config.max_in_flight - in_flight))
            for msg in await self.consumer.poll(room):
                if msg.error() is None:
                    self._handle(msg)
                else:
                    log.warning("alerts topic: %s", msg.error())
            await self.consumer.commit()

    async def _prune(self, now: float) -> None:
        """Forget long-expired silences, here and (tombstones) on the compacted topic."""
        old = [s.id for s in self.state.silences() if s.ends_at < now - self.state.retention_s]
        self.state.prune(now)
        for sid in old:
            try:
                await self.publish_state(silence_key(sid), None)
            except KafkaIOError as exc:
                log.warning("silence %s not tombstoned: %s", sid, exc)
                return

    def _handle(self, msg: Message) -> None:
        assert self.consumer is not None and self.dispatcher is not None
        assert self.recent is not None
        partition, offset = msg.partition() or 0, msg.offset() or 0
        raw = msg.value() or b""
        now = self.clock.now()
        with self.consumer.lock:
            self.consumer.book.add(partition, offset, now)
        self.metrics.alerts_in.inc()
        try:
            alert = Alert.model_validate_json(raw)
        except ValidationError as exc:
            detail = f"not a valid alert: {exc.error_count()} error(s), first at " + ".".join(
                str(p) for p in exc.errors()[0]["loc"]
            )
            bad = DeliveryResult("-", "-", "-", Outcome.DEAD_LETTERED, detail=detail, attempts=0)
            self._spawn(self._finish_undecodable(bad, raw, partition, offset))
            return
        routed = self.dispatcher.route(alert)
        silenced = self.state.silenced_by(alert_labels(alert), now)
        only: list[str] | None = None
        if silenced is not None:
            # A resolve still goes where the firing went, or that incident never closes.
            only = [
                n
                for n in routed
                if alert.status == AlertStatus.RESOLVED
                and self.dispatcher.delivered(n, alert, "firing")
            ]
            for name in set(routed) - set(only):
                self.metrics.silenced.labels(name).inc()
        self.recent.seen(alert, silenced)
        futures = self.dispatcher.submit(alert, only)
        self._spawn(self._finish(alert, futures, partition, offset, raw))

    async def _finish(
        self,
        alert: Alert,
        futures: list[asyncio.Future[DeliveryResult]],
        partition: int | None,
        offset: int | None,
        raw: bytes | None = None,
    ) -> None:
        assert self.recent is not None
        started = asyncio.get_running_loop().time()
        for result in await asyncio.gather(*futures):
            m = self.metrics
            m.deliveries.labels(result.receiver, result.outcome.value).inc()
            m.retries.labels(result.receiver).inc(max(0, result.attempts - 1))
            m.delivery_seconds.labels(result.receiver).observe(
                asyncio.get_running_loop().time() - started
            )
            self.recent.outcome(alert.fingerprint, result.receiver, result.outcome.value)
            if result.outcome is Outcome.DEAD_LETTERED:
                body = raw if raw is not None else alert.model_dump_json().encode()
                await self._write_dead_letter(result, body, partition, offset)
        self._done(partition, offset)

    async def _finish_undecodable(
        self, result: DeliveryResult, raw: bytes, partition: int, offset: int
    ) -> None:
        await self._write_dead_letter(result, raw, partition, offset)
        self._done(partition, offset)

    async def _write_dead_letter(
        self, result: DeliveryResult, raw: bytes, partition: int | None, offset: int | None
    ) -> None:
        assert self.producer is not None
        record = dead_letter(
            result,
            raw,
            self.settings.topic_alerts,
            partition,
            offset,
            self.redact,
            self.clock.now(),
        )
        delay = 0.5
        # Until the broker has it: the offset must not pass a dead letter that was not kept.
        while True:
            try:
                await self.producer.send(
                    self.settings.topic_deadletter, result.fingerprint.encode(), record
                )
                self.metrics.deadletter_writes.labels(reason_class(result)).inc()
                return
            except KafkaIOError as exc:
                log.error("dead letter not written (%s); retrying", self.redact(str(exc)))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _done(self, partition: int | None, offset: int | None) -> None:
        if partition is None or offset is None or self.consumer is None:
            return
        with self.consumer.lock:
            self.consumer.book.done(partition, offset)

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- for /metrics and tests ------------------------------------------------------------
    async def refresh_metrics(self) -> None:
        self._refresh_state_gauges()
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
