"""Vectorised parsing of the one ISO-8601 layout publishers send nearly always.

``YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]Z`` strings of one length are parsed as a byte
matrix with integer arithmetic, giving exactly what ``datetime.fromisoformat(v)
.timestamp()`` gives (the exact microsecond count divided once by 1e6, both
operands exact below 2**53 us). Rows that do not match the layout or the range
are left to the caller's per-value path, so no row is decided differently.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

_FRACTION_DIGITS = {20: 0, 24: 3, 27: 6}
_SEPARATORS = {4: ord("-"), 7: ord("-"), 10: ord("T"), 13: ord(":"), 16: ord(":")}
# Years 1970..2199: epoch microseconds stay below 2**53, so float64 holds them exactly.
_MIN_YEAR, _MAX_YEAR = 1970, 2199
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _number(m: npt.NDArray[np.int64], start: int, width: int) -> npt.NDArray[np.int64]:
    out = np.zeros(m.shape[0], dtype=np.int64)
    for i in range(start, start + width):
        out = out * 10 + m[:, i]
    return out


def iso_utc_fast(
    values: list[Any],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]] | None:
    """(epoch seconds, parsed) for str ``values`` of one length; None if not applicable.

    Rows with ``parsed`` False must be parsed by the caller.
    """
    if not values:
        return None
    width = len(values[0])
    digits = _FRACTION_DIGITS.get(width)
    if digits is None:
        return None
    try:
        raw = "".join(values).encode("ascii")
    except (UnicodeEncodeError, TypeError):
        return None
    if len(raw) != width * len(values):
        return None  # lengths differ
    m = np.frombuffer(raw, dtype=np.uint8).reshape(len(values), width).astype(np.int64)
    ok = m[:, width - 1] == ord("Z")
    for pos, sep in _SEPARATORS.items():
        ok &= m[:, pos] == sep
    digit_cols = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
    if digits:
        ok &= m[:, 19] == ord(".")
        digit_cols += list(range(20, 20 + digits))
    d = m - ord("0")
    ok &= ((d[:, digit_cols] >= 0) & (d[:, digit_cols] <= 9)).all(axis=1)
    d = np.where(ok[:, None], d, 0)
    year, month, day = _number(d, 0, 4), _number(d, 5, 2), _number(d, 8, 2)
    hour, minute, second = _number(d, 11, 2), _number(d, 14, 2), _number(d, 17, 2)
    micro = _number(d, 20, digits) * 10 ** (6 - digits) if digits else np.zeros_like(year)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    dim = _DAYS_IN_MONTH[np.where(month_ok, month, 1)] + (leap & (month == 2))
    ok &= month_ok & (day >= 1) & (day <= dim) & (hour <= 23) & (minute <= 59) & (second <= 59)
    ok &= (year >= _MIN_YEAR) & (year <= _MAX_YEAR)
    # Days from the civil date (H. Hinnant's algorithm), years here are positive.
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    us = ((days * 24 + hour) * 60 + minute) * 60 + second
    us = us * 1_000_000 + micro
    ts = np.where(ok, us.astype(np.float64) / 1e6, np.nan)
    return ts, ok
