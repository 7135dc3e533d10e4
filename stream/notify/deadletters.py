"""Notifier dead letters: the notification (or the undecodable alert event), the receiver,
the reason and the response, redacted."""

from __future__ import annotations

import asyncio
import logging

from connectors.notify import DeliveryResult, Redactor
from schemas.deadletters import build_dead_letter
from schemas.models import dump_json

from .kafka_io import AsyncProducer, KafkaIOError

log = logging.getLogger("llmwatch.notify")


def reason_class(result: DeliveryResult) -> str:
    """A bounded label for metrics: the HTTP status class or what went wrong."""
    if result.http_status is not None:
        return f"http_{result.http_status // 100}xx"
    if result.detail.startswith("no receiver named"):
        return "unknown_receiver"
    if result.detail.startswith("gave up"):
        return "deadline"
    return "other"


def dead_letter(
    result: DeliveryResult,
    raw: bytes,
    topic: str,
    partition: int | None,
    offset: int | None,
    redact: Redactor,
    now: float,
) -> bytes:
    """One record for the dead-letter topic; every text passes the redactor once more."""
    status = f" (HTTP {result.http_status})" if result.http_status is not None else ""
    reason = (
        f"notifier: {result.phase} for {result.group_key} not delivered to "
        f"{result.receiver}{status} after {result.attempts} attempt(s): {result.detail}"
    )
    # Built as the worker's are: the raw head only past the cap, with size and SHA-256.
    record = build_dead_letter(
        redact(raw.decode("utf-8", "replace")).encode(),
        topic=topic,
        partition=partition,
        offset=offset,
        reason=redact(reason),
        location=f"receiver:{result.receiver}",
        now=now,
    )
    return dump_json(record)


async def send_until_kept(
    producer: AsyncProducer, topic: str, key: bytes, record: bytes, redact: Redactor
) -> None:
    """Until the broker has it: the offset must not pass a dead letter that was not kept."""
    delay = 0.5
    while True:
        try:
            await producer.send(topic, key, record)
            return
        except KafkaIOError as exc:
            log.error("dead letter not written (%s); retrying", redact(str(exc)))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
