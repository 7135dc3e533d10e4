"""Wire timestamps: ISO-8601 strings or epoch seconds, always UTC.

The model validators and the columnar fast path both call ``parse_ts`` so the two
decoders cannot disagree about what a timestamp means.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Below 2**53 microseconds, so every accepted number maps to a datetime and back exactly.
MAX_EPOCH_S = 9.0e9


def epoch_to_datetime(value: float) -> datetime:
    """Epoch seconds (int or float) to an aware UTC datetime, rounded to the microsecond."""
    if not (0.0 <= value <= MAX_EPOCH_S):
        raise ValueError(f"epoch seconds must be between 0 and {MAX_EPOCH_S:.0f}, got {value!r}")
    # round() is half-even, the same as numpy.rint used by the columnar decoder.
    return EPOCH + timedelta(microseconds=round(value * 1e6))


def parse_ts(value: Any) -> Any:
    """Before-validator: numbers are epoch seconds, strings ISO-8601 (naive means UTC).

    Datetimes pass through (publishers build models in Python); anything else is refused.
    """
    if isinstance(value, datetime):
        return value
    if isinstance(value, bool):
        raise ValueError("must be an ISO-8601 string or epoch seconds, not a boolean")
    if isinstance(value, int | float):
        if isinstance(value, float) and value != value:
            raise ValueError("must be a finite number (no NaN or infinity)")
        return epoch_to_datetime(value)
    if isinstance(value, str):
        if len(value) > 64:
            raise ValueError("ISO-8601 timestamp is too long")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # an offset that pushes year 1 or 9999 out of range
            raise ValueError(f"timestamp out of range: {value!r}") from None
    raise ValueError(f"must be an ISO-8601 string or epoch seconds, not {type(value).__name__}")
