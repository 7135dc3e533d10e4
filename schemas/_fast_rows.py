"""The columnar fast path's field extractors: one batch of parsed objects (``_Rows``),
each field pulled out as one list, type-checked as a set of types, converted with the
same numpy constructors ``Columns.from_rows`` uses and range-checked with array
comparisons; a row any rule doubts is marked ``unsure`` (``schemas._fast`` builds the
columns of each kind from these and sends the unsure rows through the model)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from itertools import repeat
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from ._isotime import iso_utc_fast
from .models import SUPPORTED_SCHEMA_VERSIONS
from .timestamps import MAX_EPOCH_S, parse_ts

_fromiso = datetime.fromisoformat

Bool = npt.NDArray[np.bool_]
_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<missing>"})()
_MISSING_T = type(_MISSING)
_NONE_T = type(None)
_NUM = frozenset({float, int})
_INT64_MAX = 2**63 - 1


def _obj(values: list[Any]) -> npt.NDArray[np.object_]:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _str_ts(value: Any) -> float:
    try:
        parsed = parse_ts(value)
    except ValueError:
        return np.nan
    result: float = parsed.timestamp()
    return result


def _iso_batch(values: list[Any]) -> list[float]:
    """Epoch seconds per value, NaN where ``parse_ts`` would refuse it.

    The common case (ISO strings with an offset or Z) skips the per-value wrapper; an
    aware datetime's timestamp() is the same instant parse_ts's astimezone(UTC) gives.
    """
    try:
        if max(map(len, values), default=0) <= 64:
            parsed = list(map(_fromiso, values))
            return [
                d.timestamp() if d.tzinfo is not None and 1 < d.year < 9999 else _str_ts(v)
                for d, v in zip(parsed, values, strict=True)
            ]
    except (TypeError, ValueError):
        pass
    return list(map(_str_ts, values))


_UNSET = msgspec.UNSET


def _floats(values: list[Any]) -> tuple[npt.NDArray[np.float64], Bool | None]:
    """float64 of numbers, and the rows whose integer does not fit a float (else None)."""
    try:
        return np.array(values, dtype=np.float64), None
    except OverflowError:
        huge = np.fromiter(
            (type(v) is int and not -(2**1023) < v < 2**1023 for v in values),
            dtype=np.bool_,
            count=len(values),
        )
        return np.array(
            [0.0 if h else v for v, h in zip(values, huge.tolist(), strict=True)], dtype=np.float64
        ), huge


class _Rows:
    """One batch of parsed objects; each extractor returns a column and marks bad rows.

    The rows come either as dicts (``objs``) or as ``load_fields``'s columns.
    """

    def __init__(
        self,
        objs: list[dict[str, Any]] | None,
        fields: dict[str, list[Any]] | None = None,
        filled: frozenset[str] = frozenset(),
    ) -> None:
        self.objs = objs
        self.fields = fields
        self.filled = filled  # fields msgspec gives as None when absent
        self.asked: dict[str, Any] | None = None  # key -> default, for _defaults_asked
        if objs is not None:
            self.n = len(objs)
        else:
            assert fields is not None
            self.n = len(next(iter(fields.values()), []))
        self.unsure: Bool = np.zeros(self.n, dtype=np.bool_)
        # Label columns' distinct values, for the batch's label codes (schemas.labels).
        self.distinct: dict[str, tuple[list[Any], dict[Any, None]]] = {}

    def _get(self, key: str, default: Any) -> list[Any]:
        """One field of every row; ``default`` where absent (an explicit null stays None).

        From ``load_fields``'s columns when there are some; else one C-level
        ``dict.get`` pass per field over the dicts.
        """
        if self.asked is not None:
            self.asked[key] = default
        if self.fields is not None:
            return self._field(key, default)
        assert self.objs is not None
        values = list(map(dict.get, self.objs, repeat(key, self.n)))
        if default is not None and None in values:
            # Rare: tell absent from null only when there is a None to tell apart.
            values = list(map(dict.get, self.objs, repeat(key, self.n), repeat(default, self.n)))
        return values

    def _field(self, key: str, default: Any) -> list[Any]:
        assert self.fields is not None
        values = self.fields.get(key)
        if values is None:
            return [default] * self.n
        if default is None and key in self.filled:
            return values  # msgspec filled absent with None already
        if _UNSET in values:
            values = [default if v is _UNSET else v for v in values]
        return values

    def _mark(self, index: int) -> None:
        self.unsure[index] = True

    def _clean(self, values: list[Any], ok: Callable[[Any], bool], stand_in: Any) -> list[Any]:
        """Slow branch: replace values that fail ``ok`` with a stand-in and mark the row."""
        out = list(values)
        for i, v in enumerate(values):
            if not ok(v):
                out[i] = stand_in
                self._mark(i)
        return out

    def header(self, kind: str) -> None:
        kinds = self._get("kind", _MISSING)
        if not set(map(type, kinds)) <= {str, _MISSING_T} or not set(kinds) <= {_MISSING, kind}:
            self._clean(kinds, lambda v: v is _MISSING or (type(v) is str and v == kind), None)
        versions = self._get("schema_version", _MISSING)
        allowed = {_MISSING, *SUPPORTED_SCHEMA_VERSIONS}
        if not set(map(type, versions)) <= {int, _MISSING_T} or not set(versions) <= allowed:
            self._clean(
                versions,
                lambda v: v is _MISSING or (type(v) is int and v in SUPPORTED_SCHEMA_VERSIONS),
                None,
            )

    def label(
        self, key: str, lo: int, hi: int, default: Any = _MISSING, *, keep: bool = True
    ) -> npt.NDArray[np.object_]:
        """``text`` for a label column: labels repeat, so the type and length checks run
        on the batch's distinct values only, which detectors then reuse as label codes."""
        values = self._get(key, _MISSING)
        try:
            distinct = dict.fromkeys(values)
        except TypeError:  # a list or object where a string belongs
            return self._text(values, lo, hi, default)
        if all(type(v) is str and lo <= len(v) <= hi for v in distinct):
            if keep:
                self.distinct[key] = (values, distinct)
            return _obj(values)
        return self._text(values, lo, hi, default)

    def opt_label(self, key: str, hi: int, *, keep: bool = True) -> npt.NDArray[np.object_]:
        """``opt_text`` for a label column (see ``label``; ``keep``: detectors key by it)."""
        values = self._get(key, None)
        try:
            distinct = dict.fromkeys(values)
        except TypeError:
            return self._opt_text(values, hi)
        if all(v is None or (type(v) is str and len(v) <= hi) for v in distinct):
            if keep:
                self.distinct[key] = (values, distinct)
            return _obj(values)
        return self._opt_text(values, hi)

    def text(self, key: str, lo: int, hi: int, default: Any = _MISSING) -> npt.NDArray[np.object_]:
        """A required (or defaulted) string with a length range."""
        return self._text(self._get(key, _MISSING), lo, hi, default)

    def _text(self, values: list[Any], lo: int, hi: int, default: Any) -> npt.NDArray[np.object_]:
        if set(map(type, values)) != {str} and self.n:
            values = [default if v is _MISSING and default is not _MISSING else v for v in values]
            values = self._clean(values, lambda v: type(v) is str, "?" * lo)
        lengths = list(map(len, values))
        if lengths and (min(lengths) < lo or max(lengths) > hi):
            self._clean(values, lambda v: lo <= len(v) <= hi, None)
        return _obj(values)

    def opt_text(self, key: str, hi: int) -> npt.NDArray[np.object_]:
        return self._opt_text(self._get(key, None), hi)

    def _opt_text(self, values: list[Any], hi: int) -> npt.NDArray[np.object_]:
        types = set(map(type, values))
        if types == {_NONE_T} or not self.n:
            return _obj(values)
        if not types <= {str, _NONE_T}:
            values = self._clean(values, lambda v: v is None or type(v) is str, None)
        # filter(None, ...) drops "" too, which is fine: the only limit here is an upper one.
        if max(map(len, filter(None, values)), default=0) > hi:
            self._clean(values, lambda v: v is None or len(v) <= hi, None)
        return _obj(values)

    def number(
        self,
        key: str,
        lo: float = -np.inf,
        hi: float = np.inf,
        *,
        lo_open: bool = False,
        optional: bool = False,
    ) -> npt.NDArray[np.float64]:
        """A finite float (ints taken as the model takes them); NaN where optional and absent."""
        values = self._get(key, None if optional else _MISSING)
        types = set(map(type, values))
        allowed = _NUM | {_NONE_T} if optional else _NUM
        if not types <= allowed:
            values = self._clean(values, lambda v: type(v) in allowed, 0.0)
        arr, huge = _floats(values)
        if huge is not None:
            self.unsure |= huge
        present = ~np.isnan(arr) if optional else np.ones(self.n, dtype=np.bool_)
        low = arr <= lo if lo_open else arr < lo
        bad = np.isinf(arr) | low | (arr > hi)
        self.unsure |= present & bad
        if not optional:
            self.unsure |= np.isnan(arr)
        return arr

    def _ints(self, values: list[Any], lo: int, hi: int, optional: bool) -> list[Any]:
        """Type- and range-check Python ints before numpy sees them (no overflow)."""
        allowed = {int, _NONE_T} if optional else {int}
        if not set(map(type, values)) <= allowed:
            values = self._clean(values, lambda v: type(v) in allowed, None if optional else lo)
        present = [v for v in values if v is not None] if optional else values
        if present and (min(present) < lo or max(present) > hi):
            values = self._clean(
                values,
                lambda v: (v is None and optional) or lo <= v <= hi,
                None if optional else lo,
            )
        return values

    def integer(
        self, key: str, lo: int, hi: int, *, default: Any = _MISSING, dtype: Any = np.int64
    ) -> npt.NDArray[Any]:
        values = self._get(key, default)
        if _MISSING in values:
            values = self._clean(values, lambda v: v is not _MISSING, lo)
        return np.array(self._ints(values, lo, hi, False), dtype=dtype)

    def opt_integer(self, key: str, lo: int, hi: int) -> npt.NDArray[np.int64]:
        values = self._ints(self._get(key, None), lo, hi, True)
        if None in values:
            values = [-1 if v is None else v for v in values]
        return np.array(values, dtype=np.int64)

    def count_as_float(self, key: str) -> npt.NDArray[np.float64]:
        values = self._ints(self._get(key, 0), 0, _INT64_MAX, False)
        return np.array(values, dtype=np.float64)

    def choice(self, key: str, codes: dict[str, int], default: str) -> npt.NDArray[np.int64]:
        values = self._get(key, default)
        if not set(map(type, values)) <= {str}:
            values = self._clean(values, lambda v: type(v) is str, default)
        coded = list(map(codes.get, values, repeat(-1, self.n)))
        arr = np.array(coded, dtype=np.int64)
        self.unsure |= arr < 0
        arr[arr < 0] = 0
        return arr

    def required_choice(self, key: str, codes: dict[str, int]) -> npt.NDArray[np.int64]:
        return self.choice(key, codes, default=_MISSING)

    def opt_flag(self, key: str) -> npt.NDArray[np.float64]:
        values = self._get(key, None)
        if not set(map(type, values)) <= {bool, _NONE_T}:
            values = self._clean(values, lambda v: v is None or type(v) is bool, None)
        return np.array(values, dtype=np.float64)

    def absent(self, key: str) -> None:
        """Fields the fast path does not handle: any row carrying one goes to the model."""
        values = self._get(key, None)
        if set(map(type, values)) != {_NONE_T} and self.n:
            self._clean(values, lambda v: v is None, None)

    def timestamp(self, key: str, now: float, skew: float) -> npt.NDArray[np.float64]:
        values = self._get(key, _MISSING)
        types = set(map(type, values))
        if types <= _NUM:
            epoch, huge = _floats(values)
            self.unsure |= ~((epoch >= 0.0) & (epoch <= MAX_EPOCH_S))
            if huge is not None:
                self.unsure |= huge
            # Same rounding as timestamps.epoch_to_datetime: half-even to the microsecond.
            # "+ 0.0" turns -0.0 into 0.0, as a datetime's timestamp() gives it.
            ts = np.rint(np.where(self.unsure, 0.0, epoch) * 1e6) / 1e6 + 0.0
        else:
            fast = iso_utc_fast(values) if types == {str} else None
            if fast is None:
                ts = np.array(_iso_batch(values), dtype=np.float64)
            else:
                ts, parsed = fast
                rest = np.flatnonzero(~parsed)
                if rest.size:
                    ts[rest] = _iso_batch([values[i] for i in rest.tolist()])
            self.unsure |= np.isnan(ts)
        # Written exactly as the model's check is, so the floats compare the same way.
        self.unsure |= (ts - now) > skew
        return ts
