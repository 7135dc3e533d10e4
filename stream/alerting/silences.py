"""The one silence store: silences and acknowledgements, a fold of the compacted topic.

The compacted silences topic is the store. Keys are ``silence:<id>`` and
``ack:<fingerprint>``; values are the JSON of ``Silence``/``Ack``; a tombstone (no
value) removes one. Every notifier replica applies every record, so all of them
answer the same questions. Silences mute by labels for a time window; an
acknowledgement says someone owns one firing instance (``alert_id``) of an alert.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .matchers import Matcher, match_all, parse_matchers

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


@dataclass(slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str = ""

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return match_all(self.matchers, labels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [str(m) for m in self.matchers],
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "created_by": self.created_by,
            "comment": self.comment,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Silence:
        return cls(
            id=d["id"],
            matchers=parse_matchers(d["matchers"]),
            starts_at=float(d["starts_at"]),
            ends_at=float(d["ends_at"]),
            created_by=d["created_by"],
            comment=d.get("comment", ""),
        )


@dataclass(slots=True)
class Ack:
    fingerprint: str
    alert_id: str  # the firing instance acknowledged; a later refire is not acked
    by: str
    at: float
    expires_at: float
    comment: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "alert_id": self.alert_id,
            "by": self.by,
            "at": self.at,
            "expires_at": self.expires_at,
            "comment": self.comment,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Ack:
        return cls(
            fingerprint=d["fingerprint"],
            alert_id=d["alert_id"],
            by=d["by"],
            at=float(d["at"]),
            expires_at=float(d["expires_at"]),
            comment=d.get("comment", ""),
        )


@dataclass(frozen=True)
class Change:
    """What one applied record changed (the service acts on new acks)."""

    kind: str  # silence | ack | none
    ack: Ack | None = None


class SilenceStore:
    def __init__(self, retention_s: float = 7 * 86400.0) -> None:
        self.retention_s = retention_s
        self._silences: dict[str, Silence] = {}
        self._acks: dict[str, Ack] = {}
        self.skipped = 0  # records that did not parse, logged and skipped

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
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            # One bad record must not stop the notifier or hide the other silences.
            # RecursionError: JSON nested deeper than json.loads' stack (issue 16).
            self.skipped += 1
            log.error("silences topic: skipped record %r: %s", key[:80], type(exc).__name__)
            return Change("none")
        log.warning("silences topic: unknown key %r", key[:80])
        return Change("none")

    def put(self, silence: Silence) -> None:
        """Hold ``silence`` without a topic record (a dry run's silences)."""
        self._silences[silence.id] = silence

    def silences(self) -> list[Silence]:
        return sorted(self._silences.values(), key=lambda s: (s.starts_at, s.id))

    def get(self, silence_id: str) -> Silence | None:
        return self._silences.get(silence_id)

    def silenced_by(self, labels: Mapping[str, str], now: float) -> str | None:
        """Id of the first active silence muting these labels, if any."""
        for sil in self.silences():
            if sil.active(now) and sil.matches(labels):
                return sil.id
        return None

    def ack_for(self, fingerprint: str, now: float) -> Ack | None:
        """The live acknowledgement of this fingerprint; an expired one counts as none."""
        ack = self._acks.get(fingerprint)
        return ack if ack is not None and now < ack.expires_at else None

    def acked(self, fingerprint: str, alert_id: str, now: float) -> Ack | None:
        """The live acknowledgement of exactly this firing instance."""
        ack = self.ack_for(fingerprint, now)
        return ack if ack is not None and ack.alert_id == alert_id else None

    def acks(self, now: float) -> list[Ack]:
        return sorted(
            (a for a in self._acks.values() if now < a.expires_at), key=lambda a: a.fingerprint
        )

    def prune(self, now: float) -> list[str]:
        """Forget silences expired for ``retention_s`` and expired acks; returns the
        silence ids dropped (the service tombstones them on the topic)."""
        old = [s.id for s in self._silences.values() if s.ends_at < now - self.retention_s]
        for sid in old:
            del self._silences[sid]
        for fp in [a.fingerprint for a in self._acks.values() if now >= a.expires_at]:
            del self._acks[fp]
        return old


def load_silences(path: Path) -> list[Silence]:
    """Silences from a JSON file: a list as ``GET /api/silences`` returns it (``id``,
    ``matchers``, ``starts_at``/``ends_at`` in epoch seconds, ``created_by``,
    ``comment``). Raises ValueError naming the file and the entry that is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({type(exc).__name__})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of silences")
    out = []
    for i, entry in enumerate(data):
        try:
            out.append(Silence.from_dict(entry))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: silence [{i}]: {type(exc).__name__}: {exc}") from None
    return out
