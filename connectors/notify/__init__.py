"""Alert delivery: receivers (PagerDuty, Slack, webhook, console), routing, the dispatcher."""

from .base import (
    Clock,
    DeliveryResult,
    Notifier,
    Outcome,
    RateLimit,
    SystemClock,
    classify_status,
    parse_retry_after,
    phase_of,
)
from .console import ConsoleNotifier
from .delivery import DeadLetterRecord, DeliveryCounts, Dispatcher
from .pagerduty import PagerDutyConfig, PagerDutyNotifier
from .redact import Redactor
from .retry import Retrier, RetryPolicy, TokenBucket
from .routing import Matcher, Route, Router, RoutingConfig
from .slack import SlackBotConfig, SlackBotNotifier, SlackWebhookConfig, SlackWebhookNotifier
from .stores import JsonFileLedger, JsonFileMessageStore, Ledger, MessageStore
from .webhook import WebhookConfig, WebhookNotifier

__all__ = [
    "Clock",
    "ConsoleNotifier",
    "DeadLetterRecord",
    "DeliveryCounts",
    "DeliveryResult",
    "Dispatcher",
    "JsonFileLedger",
    "JsonFileMessageStore",
    "Ledger",
    "Matcher",
    "MessageStore",
    "Notifier",
    "Outcome",
    "PagerDutyConfig",
    "PagerDutyNotifier",
    "RateLimit",
    "Redactor",
    "Retrier",
    "RetryPolicy",
    "Route",
    "Router",
    "RoutingConfig",
    "SlackBotConfig",
    "SlackBotNotifier",
    "SlackWebhookConfig",
    "SlackWebhookNotifier",
    "SystemClock",
    "TokenBucket",
    "WebhookConfig",
    "WebhookNotifier",
    "classify_status",
    "parse_retry_after",
    "phase_of",
]
