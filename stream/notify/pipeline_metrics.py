"""The pipeline's own metrics: notifications by reason, alerts held by inhibition or silence."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from stream.alerting.pipeline import Flushed, Stats


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry, stats: Stats) -> None:
        self._stats = stats
        self.notifications = Counter(
            "llmwatch_notify_notifications",
            "Group notifications handed to receivers, by receiver and reason "
            "(initial, update, repeat, acknowledged, resolved)",
            ["receiver", "reason"],
            registry=registry,
        )
        self.held = Counter(
            "llmwatch_notify_held",
            "Firing alerts left out of their group's notifications, by receiver and reason "
            "(inhibited, silenced, transient: fired and resolved between two looks with "
            "nothing in its group told); each alert once per group",
            ["receiver", "reason"],
            registry=registry,
        )
        self.held_episodes = Gauge(
            "llmwatch_notify_held_episodes",
            "Alert episodes held (by inhibition or silence) that were never notified as firing",
            ["reason"],
            registry=registry,
        )

    def flushed(self, flushed: Flushed) -> None:
        if flushed.note is not None:
            self.notifications.labels(flushed.receiver, flushed.note.reason).inc()
        for reason, n in flushed.held.items():
            self.held.labels(flushed.receiver, reason).inc(n)

    def refresh(self) -> None:
        for reason in ("inhibited", "silenced"):
            self.held_episodes.labels(reason).set(self._stats.held_only(reason))
