"""Delivery: receivers (PagerDuty, Slack, webhook, Alertmanager, console), the dispatcher.

Routing, grouping, inhibition, silences and acks happen before this point, in the
notifier's pipeline (stream/alerting); a receiver renders one group notification.
"""

from .alertmanager import AlertmanagerConfig, AlertmanagerNotifier
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
from .slack import SlackBotConfig, SlackBotNotifier, SlackWebhookConfig, SlackWebhookNotifier
from .stores import JsonFileLedger, JsonFileMessageStore, Ledger, MessageStore
from .webhook import WebhookConfig, WebhookNotifier

__all__ = [
    "AlertmanagerConfig",
    "AlertmanagerNotifier",
    "Clock",
    "ConsoleNotifier",
    "DeadLetterRecord",
    "DeliveryCounts",
    "DeliveryResult",
    "Dispatcher",
    "JsonFileLedger",
    "JsonFileMessageStore",
    "Ledger",
    "MessageStore",
    "Notifier",
    "Outcome",
    "PagerDutyConfig",
    "PagerDutyNotifier",
    "RateLimit",
    "Redactor",
    "Retrier",
    "RetryPolicy",
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
