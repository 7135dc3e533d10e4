"""Replay inputs: JSONL event files and CSV metric series, decoded to column batches.

A bad row never stops a replay: it becomes a ``BadRow`` (file, line number, reason)
and the run goes on. Sources yield chunks in file order; the runner merges
sources by event time.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import IO, Protocol, cast

import numpy as np
import numpy.typing as npt
import orjson

from schemas.columns import Columns, MetricColumns, series_key
from schemas.decode import decode_columns, decode_models

from .row_interval import row_scale, warn_own_start
from .timeparse import parse_timestamps

log = logging.getLogger("llmwatch.replay")

# Replay reads history: "in the future" has no meaning there, so no timestamp is too late.
NO_CLOCK = float("inf")
REPLAYED_KINDS = ("inference", "gpu", "feedback", "metric")
_PATTERNS = {k: (f'"kind":"{k}"'.encode(), f'"kind": "{k}"'.encode()) for k in REPLAYED_KINDS}
_CHUNK_BYTES = 4 << 20
TS_NAMES = ("timestamp", "timestamps", "ts", "time", "datetime", "date", "@timestamp")
_VALUE_NAMES = ("value", "val", "y", "metric_value")
_SERIES_NAMES = ("series", "name", "metric", "series_name")
# Label columns of labelled series (stream.replay.labelled reads them); replay ignores them.
LABEL_NAMES = ("label", "is_anomaly", "anomaly", "labels")
_KNOWN_NAMES = TS_NAMES + _VALUE_NAMES + _SERIES_NAMES + LABEL_NAMES


@dataclass(frozen=True, slots=True)
class BadRow:
    source: str
    line: int  # 1-based line in the file
    reason: str


@dataclass(frozen=True, slots=True)
class Part:
    """Decoded rows of one kind; ``row_ids`` index the source's series table (CSV only)."""

    columns: Columns
    row_ids: npt.NDArray[np.int64] | None = None


Chunk = dict[str, Part]


class Source(Protocol):
    name: str
    size_bytes: int

    def chunks(self, bad: list[BadRow]) -> Iterator[tuple[Chunk, int]]:
        """Decoded chunks and the bytes of input each consumed (for progress)."""
        ...


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _guess_kind(line: bytes) -> str | None:
    for kind, (compact, spaced) in _PATTERNS.items():
        if compact in line or spaced in line:
            return kind
    return None


def _one_kind(lines: list[bytes], base: int) -> dict[str, tuple[list[bytes], list[int]]] | None:
    """The grouping ``_guess_kind`` line by line would give, when every line of the chunk
    is of one kind (files split by kind): C-level passes instead of a Python loop."""
    stripped = list(map(bytes.rstrip, lines, repeat(b"\r\n", len(lines))))
    kind = _guess_kind(stripped[0]) if stripped else None
    if kind is None:
        return None
    compact = _PATTERNS[kind][0]
    if not all(map(bytes.__contains__, stripped, repeat(compact, len(stripped)))):
        return None
    for earlier in REPLAYED_KINDS[: REPLAYED_KINDS.index(kind)]:
        for pattern in _PATTERNS[earlier]:
            if any(map(bytes.__contains__, stripped, repeat(pattern, len(stripped)))):
                return None
    where = list(range(base + 1, base + len(lines) + 1))
    return {kind: (stripped, where)}


class JsonlSource:
    """llmwatch wire events, one JSON object a line, kinds mixed (dispatch on ``kind``)."""

    def __init__(self, path: Path, chunk_bytes: int = _CHUNK_BYTES) -> None:
        self.path = path
        self.name = str(path)
        self.size_bytes = path.stat().st_size
        self.chunk_bytes = chunk_bytes

    def chunks(self, bad: list[BadRow]) -> Iterator[tuple[Chunk, int]]:
        base = 0  # lines before this chunk
        with _open(self.path) as fh:
            while True:
                lines = fh.readlines(self.chunk_bytes)
                if not lines:
                    return
                consumed = sum(map(len, lines))
                yield self._decode(lines, base, bad), consumed
                base += len(lines)

    def _decode(self, lines: list[bytes], base: int, bad: list[BadRow]) -> Chunk:
        groups = _one_kind(lines, base)
        if groups is None:
            groups = self._group(lines, base, bad)
        out: Chunk = {}
        for kind, (raws, where) in groups.items():
            if not raws:
                continue
            cols, rejects = decode_columns(raws, kind=kind, now=NO_CLOCK)
            for r in rejects:
                bad.append(BadRow(self.name, where[r.index], r.reason))
            if len(cols):
                out[kind] = Part(cols)
        return out

    def _group(
        self, lines: list[bytes], base: int, bad: list[BadRow]
    ) -> dict[str, tuple[list[bytes], list[int]]]:
        """Lines by kind, one by one (mixed files); lines of no replayed kind go to ``bad``."""
        groups: dict[str, tuple[list[bytes], list[int]]] = {k: ([], []) for k in REPLAYED_KINDS}
        slow: list[tuple[bytes, int]] = []
        for i, raw in enumerate(lines):
            line = raw.rstrip(b"\r\n")
            kind = _guess_kind(line)
            if kind is None:
                if line.strip():
                    slow.append((line, base + i + 1))
                continue
            raws, where = groups[kind]
            raws.append(line)
            where.append(base + i + 1)
        for line, lineno in slow:
            kind = self._slow_kind(line, lineno, bad)
            if kind is not None:
                groups[kind][0].append(line)
                groups[kind][1].append(lineno)
        return groups

    def _slow_kind(self, line: bytes, lineno: int, bad: list[BadRow]) -> str | None:
        """The kind of a line the fast check could not place, or a BadRow saying why not."""
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        kind = obj.get("kind") if isinstance(obj, dict) else None
        if isinstance(kind, str) and kind in REPLAYED_KINDS:
            return kind
        models, rejects = decode_models([line], now=NO_CLOCK)
        if rejects:
            bad.append(BadRow(self.name, lineno, rejects[0].reason))
        else:
            what = models[0].kind if models else "?"  # type: ignore[attr-defined]
            bad.append(BadRow(self.name, lineno, f"kind: {what!r} events are not replayed"))
        return None


@dataclass
class SeriesTable:
    """One CSV file as read: every input row, parsed or not, with its score once replayed."""

    path: Path
    header: list[str] | None
    ts_text: list[str] = field(default_factory=list)
    value_text: list[str] = field(default_factory=list)
    series: list[str] = field(default_factory=list)
    has_series_column: bool = False
    ts: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    value: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    ok: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    scores: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.ts_text)


def pick_column(header: list[str], names: tuple[str, ...]) -> int | None:
    """The first of ``names`` in a header row (any case, spaces around ignored)."""
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def header_columns(header: list[str], source: str) -> tuple[int, int, int | None]:
    """Timestamp, value and series column of a header; refuses to guess among several."""
    ts, val, ser = (pick_column(header, n) for n in (TS_NAMES, _VALUE_NAMES, _SERIES_NAMES))
    if len(header) == 2 and ts is None and val is None:
        return 0, 1, None  # two columns: timestamp,value, as without a header
    named = ", ".join(h.strip() for h in header)
    free = [j for j in range(len(header)) if j not in (ts, val, ser)]
    free = [j for j in free if header[j].strip().lower() not in LABEL_NAMES]
    if ts is None:
        raise ValueError(
            f"{source}: no timestamp column in the header ({named}); name it one of "
            + ", ".join(TS_NAMES)
        )
    if val is None:
        if len(free) != 1:
            raise ValueError(
                f"{source}: cannot tell which column holds the value ({named}); name it one "
                "of " + ", ".join(_VALUE_NAMES)
            )
        val = free[0]
    return ts, val, ser


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


class CsvSource:
    """A CSV metric series: ``timestamp,value`` (series named after the file) or with a
    ``series`` column. A header row is optional; without one the first column is the
    timestamp and the second the value. Timestamps that are row numbers are read
    ``row_interval_s`` apart (None: from the values, ``row_interval.row_scale``)."""

    def __init__(self, path: Path, row_interval_s: float | None = None) -> None:
        self.path = path
        self.name = str(path)
        self.size_bytes = path.stat().st_size
        self.table = SeriesTable(path, None)
        self.row_interval_s = row_interval_s

    def chunks(self, bad: list[BadRow]) -> Iterator[tuple[Chunk, int]]:
        t = self.table
        with _open(self.path) as fh:
            text = io.TextIOWrapper(fh, encoding="utf-8", errors="replace", newline="")
            rows = self._rows(csv.reader(text), bad)
        if not rows:
            return
        lines = [ln for ln, _, _, _ in rows]
        t.ts_text = [ts for _, ts, _, _ in rows]
        t.value_text = [v for _, _, v, _ in rows]
        t.series = [s for _, _, _, s in rows]
        t.ts, ts_errors = parse_timestamps(t.ts_text)
        t.value = floats(t.value_text)
        t.ok = np.isfinite(t.ts) & np.isfinite(t.value)
        scale, how = row_scale(t.ts[t.ok], t.value[t.ok], self.row_interval_s)
        warn_own_start(self.name, t.ts[t.ok], scale, how)
        if scale is not None:
            t.ts = t.ts * scale
        t.scores = np.full(len(rows), np.nan)
        for i in np.flatnonzero(~t.ok).tolist():
            if i in ts_errors:
                reason = f"timestamp: {ts_errors[i]}"
            elif not np.isfinite(t.ts[i]):
                reason = f"timestamp: not usable: {t.ts_text[i]!r}"
            else:
                reason = f"value: not a finite number: {t.value_text[i]!r}"
            bad.append(BadRow(self.name, lines[i], reason))
        bad.sort(key=lambda b: (b.source, b.line))
        ids = np.flatnonzero(t.ok).astype(np.int64)
        names = np.empty(len(ids), dtype=object)
        names[:] = [t.series[i] for i in ids.tolist()]
        labels = np.empty(len(ids), dtype=object)
        labels[:] = [{} for _ in range(len(ids))]
        keys = np.empty(len(ids), dtype=object)
        keys[:] = [series_key(n, {}) for n in names.tolist()]
        cols = MetricColumns(
            ts=t.ts[ids], name=names, series=keys, labels=labels, value=t.value[ids]
        )
        yield {"metric": Part(cols, ids)}, self.size_bytes

    def _rows(
        self, reader: Iterator[list[str]], bad: list[BadRow]
    ) -> list[tuple[int, str, str, str]]:
        t = self.table
        default_series = self.path.name.split(".")[0]
        out: list[tuple[int, str, str, str]] = []
        ts_i, val_i, ser_i = 0, 1, None
        first = True
        width = 2
        for row in reader:
            # A blank line reads as []; a line of blank cells needs a look at each.
            if not row or (not row[0].strip() and all(not c.strip() for c in row)):
                continue
            lineno = reader.line_num  # type: ignore[attr-defined]
            if first:
                first = False
                if len(row) > 2 and pick_column(row, _KNOWN_NAMES) is None:
                    # Data or a header of unknown names: which column is which is a guess.
                    raise ValueError(
                        f"{self.name}: cannot tell the timestamp and value columns: the first "
                        f"row ({', '.join(c.strip() for c in row[:8])}) names none of its "
                        f"{len(row)} columns; add a header such as timestamp,series,value"
                    )
                if not ((len(row) >= 2 and _is_number(row[-1])) or _looks_like_ts(row[0])):
                    t.header = row
                    ts_i, val_i, ser_i = header_columns(row, self.name)
                    t.has_series_column = ser_i is not None
                    width = max(ts_i, val_i, ser_i or 0) + 1
                    continue
            if len(row) < width:
                bad.append(BadRow(self.name, lineno, f"expected {width} columns, got {len(row)}"))
                continue
            series = row[ser_i].strip() if ser_i is not None else default_series
            if not series:
                bad.append(BadRow(self.name, lineno, "series: empty name"))
                continue
            out.append((lineno, row[ts_i], row[val_i], series))
        return out


def _looks_like_ts(cell: str) -> bool:
    from .timeparse import parse_timestamp

    try:
        parse_timestamp(cell)
    except ValueError:
        return False
    return True


def floats(cells: list[str]) -> npt.NDArray[np.float64]:
    """CSV cells as floats; a cell that is not a number is NaN (its row then goes to the
    bad rows with the reason)."""
    try:
        return np.asarray(cells, dtype=np.float64)
    except ValueError:
        out = np.full(len(cells), np.nan)
        for i, c in enumerate(cells):
            with contextlib.suppress(ValueError):
                out[i] = float(c)
        return out


def open_source(path: Path, row_interval_s: float | None = None) -> JsonlSource | CsvSource:
    """CSV by extension (``.csv``, ``.csv.gz``, ``.tsv`` is not supported); else JSONL.
    ``row_interval_s``: seconds between rows of a CSV whose timestamps are row numbers."""
    suffixes = [s.lower() for s in path.suffixes]
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if ".csv" in suffixes:
        return CsvSource(path, row_interval_s)
    return JsonlSource(path)
