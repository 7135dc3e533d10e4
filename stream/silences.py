"""Silences (mute every alert matching label matchers for a time) and acknowledgements
(someone owns this firing alert; stop the reminders).

Ids are derived from the content and a counter, never from randomness, so a replay
of the same operations gives the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stream.matchers import Matcher, match_all, parse_matchers


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


class SilenceStore:
    """All silences and acknowledgements, and the questions the lifecycle asks of them."""

    def __init__(self, retention_s: float) -> None:
        self.retention_s = retention_s
        self._silences: dict[str, Silence] = {}
        self._acks: dict[str, Ack] = {}
        self._seq = 0

    # -- silences ---------------------------------------------------------------
    def add(
        self,
        matchers: Sequence[str | Matcher],
        starts_at: float,
        ends_at: float,
        created_by: str,
        comment: str = "",
    ) -> Silence:
        parsed = parse_matchers(tuple(matchers))
        if not parsed:
            raise ValueError("a silence needs at least one matcher")
        if ends_at <= starts_at:
            raise ValueError(f"silence ends ({ends_at}) before it starts ({starts_at})")
        if not created_by:
            raise ValueError("a silence needs an author (created_by)")
        self._seq += 1
        digest = hashlib.sha256(
            f"{self._seq}|{starts_at}|{created_by}|{[str(m) for m in parsed]}".encode()
        ).hexdigest()[:12]
        sil = Silence(
            f"sil-{digest}", parsed, float(starts_at), float(ends_at), created_by, comment
        )
        self._silences[sil.id] = sil
        return sil

    def expire(self, silence_id: str, now: float) -> Silence:
        sil = self._silences.get(silence_id)
        if sil is None:
            raise KeyError(f"no silence {silence_id!r}")
        sil.ends_at = min(sil.ends_at, now)
        sil.starts_at = min(sil.starts_at, sil.ends_at)
        return sil

    def silences(self) -> list[Silence]:
        return sorted(self._silences.values(), key=lambda s: (s.starts_at, s.id))

    def silenced_by(self, labels: Mapping[str, str], now: float) -> str | None:
        """Id of the first active silence muting these labels, if any."""
        for sil in self.silences():
            if sil.active(now) and sil.matches(labels):
                return sil.id
        return None

    # -- acknowledgements -------------------------------------------------------
    def ack(
        self, fingerprint: str, alert_id: str, by: str, now: float, ttl_s: float, comment: str = ""
    ) -> Ack:
        if not by:
            raise ValueError("an acknowledgement needs a name (by)")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        a = Ack(fingerprint, alert_id, by, float(now), float(now) + ttl_s, comment)
        self._acks[fingerprint] = a
        return a

    def unack(self, fingerprint: str) -> None:
        self._acks.pop(fingerprint, None)

    def acked(self, fingerprint: str, alert_id: str, now: float) -> Ack | None:
        a = self._acks.get(fingerprint)
        if a is None or a.alert_id != alert_id or now >= a.expires_at:
            return None
        return a

    def acks(self) -> list[Ack]:
        return sorted(self._acks.values(), key=lambda a: a.fingerprint)

    # -- housekeeping -----------------------------------------------------------
    def prune(self, now: float) -> None:
        for sid in [s.id for s in self._silences.values() if s.ends_at < now - self.retention_s]:
            del self._silences[sid]
        for fp in [a.fingerprint for a in self._acks.values() if now >= a.expires_at]:
            del self._acks[fp]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self._seq,
            "silences": [s.to_dict() for s in self.silences()],
            "acks": [a.to_dict() for a in self.acks()],
        }

    def load(self, d: Mapping[str, Any]) -> None:
        self._seq = int(d["seq"])
        self._silences = {s["id"]: Silence.from_dict(s) for s in d["silences"]}
        self._acks = {a["fingerprint"]: Ack.from_dict(a) for a in d["acks"]}
