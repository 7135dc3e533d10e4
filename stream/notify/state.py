"""Silences and acknowledgements as the notifier sees them: a fold of the silences topic.

The compacted topic is the store. Keys are ``silence:<id>`` and ``ack:<fingerprint>``;
values are the JSON of ``Silence``/``Ack``; a tombstone (no value) removes one.
Every instance applies every record, so all of them answer the same questions.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from stream.silences import Ack, Silence

log = logging.getLogger("llmwatch.notify")

SILENCE_PREFIX = "silence:"
ACK_PREFIX = "ack:"


def silence_key(silence_id: str) -> str:
    return f"{SILENCE_PREFIX}{silence_id}"


def ack_key(fingerprint: str) -> str:
    return f"{ACK_PREFIX}{fingerprint}"


def new_silence_id(silence: Mapping[str, object], created_ns: int) -> str:
    """Unique across instances without coordination: content plus creation time."""
    digest = hashlib.sha256(f"{created_ns}|{sorted(silence.items())}".encode()).hexdigest()
    return f"sil-{digest[:16]}"


@dataclass(frozen=True)
class Change:
    """What one applied record changed (the service acts on new acks)."""

    kind: str  # silence | ack | none
    ack: Ack | None = None


class SilenceState:
    def __init__(self, retention_s: float = 7 * 86400.0) -> None:
        self.retention_s = retention_s
        self._silences: dict[str, Silence] = {}
        self._acks: dict[str, Ack] = {}

    def apply(self, key: str, value: bytes | None) -> Change:
        """Fold one topic record in; a record that does not parse is logged and skipped."""
        try:
            if key.startswith(SILENCE_PREFIX):
                sid = key.removeprefix(SILENCE_PREFIX)
                if value is None:
                    self._silences.pop(sid, None)
                else:
                    self._silences[sid] = Silence.from_dict(json.loads(value))
                return Change("silence")
            if key.startswith(ACK_PREFIX):
                fp = key.removeprefix(ACK_PREFIX)
                if value is None:
                    self._acks.pop(fp, None)
                    return Change("ack")
                ack = Ack.from_dict(json.loads(value))
                self._acks[fp] = ack
                return Change("ack", ack)
        except (ValueError, KeyError, TypeError) as exc:
            # One bad record must not stop the notifier or hide the other silences.
            log.error("silences topic: skipped record %r: %s", key[:80], type(exc).__name__)
            return Change("none")
        log.warning("silences topic: unknown key %r", key[:80])
        return Change("none")

    def silences(self) -> list[Silence]:
        return sorted(self._silences.values(), key=lambda s: (s.starts_at, s.id))

    def get(self, silence_id: str) -> Silence | None:
        return self._silences.get(silence_id)

    def silenced_by(self, labels: Mapping[str, str], now: float) -> str | None:
        for sil in self.silences():
            if sil.active(now) and sil.matches(labels):
                return sil.id
        return None

    def ack_for(self, fingerprint: str, now: float) -> Ack | None:
        """The live acknowledgement of this fingerprint; an expired one counts as none."""
        ack = self._acks.get(fingerprint)
        return ack if ack is not None and now < ack.expires_at else None

    def acks(self, now: float) -> list[Ack]:
        return sorted(
            (a for a in self._acks.values() if now < a.expires_at), key=lambda a: a.fingerprint
        )

    def prune(self, now: float) -> None:
        old = [s.id for s in self._silences.values() if s.ends_at < now - self.retention_s]
        for sid in old:
            del self._silences[sid]
        for fp in [a.fingerprint for a in self._acks.values() if now >= a.expires_at]:
            del self._acks[fp]
