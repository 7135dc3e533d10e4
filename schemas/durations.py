"""Durations as people write them: the one parser every config field and CLI flag uses.

``500ms``, ``90s``, ``10m``, ``1h30m``, ``2d``, ``1w``, ``1.5h``; a bare number
(``90`` or ``90.5``) is seconds. Units run from the largest down, each at most
once (as in Prometheus), so ``30m1h`` is refused rather than guessed at.
It lives in ``schemas`` because every package may import it (connectors never
import ``stream``).
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Annotated, Any

from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

# Largest first: the order a duration's parts must come in.
_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|[wdhms])")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
EXAMPLES = "500ms, 90s, 10m, 1h30m, 2d"


def parse_duration(value: object) -> float:
    """Seconds from a number (seconds) or a string like ``1h30m``; raises ``ValueError``."""
    if isinstance(value, bool):  # bool is an int; True seconds is a mistake, not 1 s
        raise ValueError(f"expected a duration like {EXAMPLES}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value)
    else:
        raise ValueError(f"expected a duration like {EXAMPLES}, not {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be finite and not negative, got {value!r}")
    return seconds


def _parse_text(value: str) -> float:
    text = value.strip().lower()
    if _NUMBER.fullmatch(text):
        return float(text)
    total, pos, last = 0.0, 0, -1
    order = list(_UNITS)
    while pos < len(text):
        m = _PART.match(text, pos)
        if m is None:
            raise ValueError(f"not a duration: {value!r} (use e.g. {EXAMPLES})")
        rank = order.index(m.group(2))
        if rank <= last:
            raise ValueError(
                f"not a duration: {value!r} (units go largest first, each once: e.g. 1h30m)"
            )
        total += float(m.group(1)) * _UNITS[m.group(2)]
        last, pos = rank, m.end()
        while pos < len(text) and text[pos] == " ":
            pos += 1
    if last < 0:
        raise ValueError(f"not a duration: {value!r} (use e.g. {EXAMPLES})")
    return total


def format_duration(seconds: float) -> str:
    """The shortest exact spelling ``parse_duration`` reads back: 5400 -> ``1h30m``."""
    if not math.isfinite(seconds) or seconds < 0:
        return str(seconds)
    if seconds == 0:
        return "0s"
    millis = round(seconds * 1000)
    if abs(millis - seconds * 1000) > 1e-6 * max(1.0, seconds * 1000):
        return f"{seconds:g}s"  # finer than a millisecond: plain seconds say it exactly
    parts = []
    for unit, size in _UNITS.items():
        count, millis = divmod(millis, round(size * 1000))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def duration_arg(text: str) -> float:
    """argparse ``type=``: a positive duration, or a usage error naming the text."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return seconds


def _coerce(value: object) -> object:
    # Strings are parsed here; numbers and anything else go on to float validation,
    # so a wrong type is reported by pydantic in its usual words.
    return parse_duration(value) if isinstance(value, str) else value


class _AsDuration:
    """Annotated marker: the field also takes duration strings; JSON Schema says so.

    Put limits *before* it (``Annotated[float, Field(gt=0), AS_DURATION]``): they then
    apply to the parsed seconds and still appear in the JSON Schema as limits.
    """

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_before_validator_function(_coerce, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> Any:
        out = handler(schema)
        out["format"] = "duration"
        return out


AS_DURATION = _AsDuration()
# Seconds in a config field, also written as "90s", "1h30m", "2d".
Duration = Annotated[float, Field(allow_inf_nan=False), AS_DURATION]
