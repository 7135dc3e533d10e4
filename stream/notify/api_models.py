"""Request bodies of the notifier API, validated so a bad field gets a 400 naming it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas import durations
from stream.alerting.matchers import Matcher

MAX_TTL_S = 90 * 86400.0


def parse_duration(value: object) -> float:
    """Seconds from 90, "90s", "1h30m", "2d" (schemas.durations), up to 90 days."""
    seconds = durations.parse_duration(value)
    if not 0 < seconds <= MAX_TTL_S:
        raise ValueError(f"must be more than 0 and at most {MAX_TTL_S / 86400:g} days")
    return seconds


def _epoch(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


class SilenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: list[Matcher] = Field(min_length=1, max_length=32)
    created_by: Annotated[str, Field(min_length=1, max_length=128)]
    comment: Annotated[str, Field(max_length=1024)] = ""
    starts_at: dt.datetime | None = None  # ISO-8601 or epoch seconds; default now
    ends_at: dt.datetime | None = None
    duration: float | None = None  # seconds or "2h"; alternative to ends_at

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float | None:
        return None if v is None else parse_duration(v)

    def window(self, now: float) -> tuple[float, float]:
        starts = _epoch(self.starts_at) or now
        ends = _epoch(self.ends_at)
        if ends is None and self.duration is None:
            raise ValueError("ends_at: give ends_at or duration")
        if ends is not None and self.duration is not None:
            raise ValueError("duration: give ends_at or duration, not both")
        if ends is None:
            assert self.duration is not None
            ends = starts + self.duration
        if ends <= starts:
            raise ValueError("ends_at: must be after starts_at")
        if ends <= now:
            raise ValueError("ends_at: already in the past")
        return starts, ends


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fingerprint: Annotated[str, Field(min_length=1, max_length=64)]
    by: Annotated[str, Field(min_length=1, max_length=128)]
    comment: Annotated[str, Field(max_length=1024)] = ""
    expires_in: float | None = None  # seconds or "2h"; default from the notifier config
    alert_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None

    @field_validator("expires_in", mode="before")
    @classmethod
    def _expires(cls, v: object) -> float | None:
        return None if v is None else parse_duration(v)

    @property
    def expires_in_s(self) -> float | None:
        return self.expires_in


def describe(exc: ValidationError) -> str:
    """``field: message`` for each error; input values left out."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {str(err['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)
