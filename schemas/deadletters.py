"""Dead-letter records: one home for how a message that cannot be used is kept.

The record must itself fit on the dead-letter topic. The raw bytes travel base64-encoded
(4/3 of their size), so a big message keeps its head only, with its full size and the
SHA-256 of the whole: enough to find and match the original on the source topic.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from .brief import capped
from .models import DeadLetter

# 600,000 raw bytes are 800,000 in base64, which with the capped texts stays under the
# 1,000,000 bytes below every Kafka default (message.max.bytes 1,048,588, the producer's
# max.request.size 1,048,576): an 800 KB message in full was a 1.07 MB record.
DEAD_LETTER_MAX_RAW_BYTES = 600_000
DEAD_LETTER_MAX_TEXT = 4000  # reason and location, each


def build_dead_letter(
    raw: bytes,
    *,
    topic: str,
    reason: str,
    location: str,
    now: float,
    partition: int | None = None,
    offset: int | None = None,
    max_raw_bytes: int = DEAD_LETTER_MAX_RAW_BYTES,
) -> DeadLetter:
    """The record for ``raw`` (from ``topic`` at ``partition``/``offset``), at ``now``."""
    head = raw[:max_raw_bytes]
    return DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        raw_b64=base64.b64encode(head).decode("ascii"),
        reason=capped(reason, DEAD_LETTER_MAX_TEXT),
        location=capped(location, DEAD_LETTER_MAX_TEXT),
        ts=datetime.fromtimestamp(now, tz=UTC),
        raw_size=len(raw),
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        raw_truncated=len(head) < len(raw),
    )
