"""The notifier's dead letters fit the dead-letter topic as the worker's do (issue 16):
a big undecodable alert keeps its head, its full size and the SHA-256 of the whole."""

from __future__ import annotations

import base64
import hashlib

import orjson

from connectors.notify import DeliveryResult, Outcome, Redactor
from schemas.models import DeadLetter
from stream.notify.deadletters import dead_letter


def test_a_big_undecodable_alert_becomes_a_dead_letter_under_the_broker_limit() -> None:
    raw = b'{"kind":"alert","title":"' + b"x" * 900_000 + b's3cr3t"}'
    result = DeliveryResult("-", "-", "-", Outcome.DEAD_LETTERED, detail="not a valid alert")
    record = dead_letter(result, raw, "llmwatch.alerts", 2, 77, Redactor(["s3cr3t"]), 1.7e9)
    assert len(record) < 1_000_000  # was 1.2 MB: over Kafka's default max message size
    dl = DeadLetter.model_validate(orjson.loads(record))
    redacted = raw.replace(b"s3cr3t", b"***")  # the redactor runs before anything is kept
    assert dl.raw_truncated and dl.raw_size == len(redacted)
    assert dl.raw_sha256 == hashlib.sha256(redacted).hexdigest()
    assert redacted.startswith(base64.b64decode(dl.raw_b64))
    assert (dl.topic, dl.partition, dl.offset) == ("llmwatch.alerts", 2, 77)
    assert "not a valid alert" in dl.reason and b"s3cr3t" not in record


def test_a_small_one_is_kept_whole() -> None:
    result = DeliveryResult("pd", "g", "firing", Outcome.DEAD_LETTERED, detail="HTTP 400")
    record = dead_letter(result, b'{"a":1}', "t", None, None, Redactor(), 1.7e9)
    dl = DeadLetter.model_validate(orjson.loads(record))
    assert base64.b64decode(dl.raw_b64) == b'{"a":1}' and not dl.raw_truncated
    assert dl.location == "receiver:pd"
