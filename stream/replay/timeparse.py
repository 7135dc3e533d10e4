"""Timestamps as people write them in CSV files, to epoch seconds (UTC).

Accepted: ISO-8601 with or without ``T``, ``Z``, an offset or fractional seconds
(any number of digits), ``YYYY-MM-DD HH:MM:SS``, ``YYYY/MM/DD HH:MM:SS``, a trailing
`` UTC``, and numbers: epoch seconds, or epoch milliseconds / microseconds /
nanoseconds told apart by magnitude (a seconds value past ~5138 AD would be
needed to confuse them). Naive times are UTC, as in the wire models.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

# Magnitudes of "now" in each unit are ~1.7e9 s, 1.7e12 ms, 1.7e15 us, 1.7e18 ns.
_MS_FROM = 1e11
_US_FROM = 1e14
_NS_FROM = 1e17
_PLAIN_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?")
_FRACTION = re.compile(r"(\d{2}:\d{2}:\d{2})\.(\d+)")


def epoch_seconds(value: float) -> float:
    """A number in s, ms, us or ns since the epoch, as seconds."""
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"epoch time must be a finite non-negative number, got {value!r}")
    if value >= _NS_FROM:
        return value / 1e9
    if value >= _US_FROM:
        return value / 1e6
    if value >= _MS_FROM:
        return value / 1e3
    return value


def _iso(text: str) -> float:
    s = text.strip()
    if s.endswith(" UTC"):
        s = s[:-4] + "+00:00"
    s = s.replace("/", "-", 2) if re.match(r"\d{4}/\d{2}/\d{2}", s) else s
    # Python reads at most microseconds; nanosecond exporters (Go, pandas) write more.
    s = _FRACTION.sub(lambda m: f"{m.group(1)}.{m.group(2)[:6]}", s, count=1)
    try:
        parsed = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"not a timestamp: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_timestamp(text: str) -> float:
    """One CSV cell to epoch seconds; raises ValueError naming the cell."""
    s = text.strip()
    if not s:
        raise ValueError("empty timestamp")
    try:
        number = float(s)
    except ValueError:
        return _iso(s)
    return epoch_seconds(number)


def parse_timestamps(
    cells: Sequence[str],
) -> tuple[npt.NDArray[np.float64], dict[int, str]]:
    """A column of cells to epoch seconds; unparsable cells are NaN, with reasons by index."""
    out = np.full(len(cells), np.nan, dtype=np.float64)
    errors: dict[int, str] = {}
    try:  # the common case: every cell a number, one vectorised conversion
        nums = np.asarray(cells, dtype=np.float64)
        if np.isfinite(nums).all() and (nums >= 0).all():
            scale = np.where(
                nums >= _NS_FROM,
                1e9,
                np.where(nums >= _US_FROM, 1e6, np.where(nums >= _MS_FROM, 1e3, 1.0)),
            )
            return nums / scale, errors
    except ValueError:
        pass
    try:  # ISO strings without offsets (a trailing Z is fine): numpy parses them at once
        bare = [c[:-1] if c.endswith("Z") else c for c in cells]
        # Only plain naive ISO: numpy reads a bare number as a year and offsets with a warning.
        if all(map(_PLAIN_ISO.fullmatch, bare)):
            stamps = np.asarray(bare, dtype="datetime64[us]")
            if np.isnat(stamps).any():
                raise ValueError("NaT")
            return stamps.astype(np.int64).astype(np.float64) / 1e6, errors
    except (ValueError, TypeError, OverflowError):
        pass
    for i, cell in enumerate(cells):
        try:
            out[i] = parse_timestamp(cell)
        except ValueError as exc:
            errors[i] = str(exc)
    return out, errors
