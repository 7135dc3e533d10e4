"""Replay readers: every timestamp format, bad rows counted with line numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pytest

from stream.replay.readers import BadRow, CsvSource, JsonlSource, open_source
from stream.replay.timeparse import parse_timestamp, parse_timestamps

T0 = datetime(2024, 6, 3, 8, 0, 0, tzinfo=UTC).timestamp()
INFERENCE = {
    "kind": "inference",
    "ts": "2024-06-03T08:00:00Z",
    "gateway": "g",
    "model": "m",
    "model_version": "v1",
    "request_id": "r1",
    "status": "ok",
    "latency_ms": 120.0,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-06-03T08:00:00Z", T0),
        ("2024-06-03T08:00:00", T0),
        ("2024-06-03 08:00:00", T0),
        ("2024-06-03T10:00:00+02:00", T0),
        ("2024-06-03T08:00:00+0000", T0),
        ("2024-06-03T08:00:00.250Z", T0 + 0.25),
        ("2024-06-03T08:00:00.250000000Z", T0 + 0.25),
        ("2024-06-03 08:00:00 UTC", T0),
        ("2024/06/03 08:00:00", T0),
        (str(int(T0)), T0),
        (f"{T0 + 0.5}", T0 + 0.5),
        (str(int(T0 * 1000)), T0),
        (str(int(T0 * 1_000_000)), T0),
        (str(int(T0 * 1_000_000_000)), T0),
    ],
)
def test_every_timestamp_format(text: str, expected: float) -> None:
    assert parse_timestamp(text) == pytest.approx(expected, abs=1e-3)
    # The vectorised column path agrees with the cell path.
    arr, errors = parse_timestamps([text, text])
    assert not errors
    assert arr == pytest.approx([expected, expected], abs=1e-3)


def test_column_of_mixed_formats_and_garbage() -> None:
    cells = ["2024-06-03T08:00:00Z", "1717401600", "yesterday", "", "2024-06-03 08:00:01"]
    arr, errors = parse_timestamps(cells)
    assert sorted(errors) == [2, 3]
    assert arr[0] == pytest.approx(T0)
    assert arr[1] == pytest.approx(1717401600.0)
    assert np.isnan(arr[2]) and np.isnan(arr[3])
    assert arr[4] == pytest.approx(T0 + 1)


def _read(src: CsvSource | JsonlSource) -> tuple[list[BadRow], dict[str, int]]:
    bad: list[BadRow] = []
    rows: dict[str, int] = {}
    for chunk, _ in src.chunks(bad):
        for kind, part in chunk.items():
            rows[kind] = rows.get(kind, 0) + len(part.columns)
    return bad, rows


def test_csv_with_header_and_bad_rows(tmp_path: Path) -> None:
    p = tmp_path / "gpu_temp.csv"
    p.write_text(
        "timestamp,value\n"
        "2024-06-03T08:00:00Z,1.5\n"
        "not a time,2.0\n"
        "2024-06-03T08:00:02Z,abc\n"
        "\n"
        "2024-06-03T08:00:03Z\n"
        "2024-06-03T08:00:04Z,inf\n"
        "2024-06-03T08:00:05Z,3.0\n"
    )
    src = open_source(p)
    assert isinstance(src, CsvSource)
    bad, rows = _read(src)
    assert rows == {"metric": 2}
    assert [(b.line, b.reason.split(":")[0]) for b in bad] == [
        (3, "timestamp"),
        (4, "value"),
        (6, "expected 2 columns, got 1"),
        (7, "value"),
    ]
    t = src.table
    assert len(t) == 5  # the short row is not a data row
    assert t.series == ["gpu_temp"] * 5


def test_csv_without_header_epoch_ms_and_series_column(tmp_path: Path) -> None:
    p = tmp_path / "plain.csv"
    p.write_text(f"{int(T0 * 1000)},1\n{int(T0 * 1000) + 1000},2\n")
    bad, rows = _read(CsvSource(p))
    assert not bad and rows == {"metric": 2}
    q = tmp_path / "multi.csv"
    q.write_text("time,series,value\n2024-06-03 08:00:00,a,1\n2024-06-03 08:00:00,b,2\n")
    src = CsvSource(q)
    bad, rows = _read(src)
    assert not bad and rows == {"metric": 2}
    assert src.table.has_series_column and src.table.series == ["a", "b"]


def test_jsonl_bad_lines_are_counted_with_line_numbers(tmp_path: Path) -> None:
    good = INFERENCE
    gpu = {
        "kind": "gpu",
        "ts": T0,
        "host": "h",
        "gpu_index": 0,
        "gpu_uuid": "GPU-1",
        "sm_util_pct": 50,
        "mem_util_pct": 20,
        "mem_used_mib": 1000,
        "mem_total_mib": 80000,
        "temp_c": 60,
        "power_w": 300,
        "power_limit_w": 700,
        "sm_clock_mhz": 1800,
    }
    lines = [
        orjson.dumps(good),
        b"{not json",
        orjson.dumps({**good, "latency_ms": -1}),
        b"",
        orjson.dumps(gpu),
        orjson.dumps({**good, "kind": "banana"}),
        b'{"ts": 1}',
    ]
    p = tmp_path / "events.jsonl"
    p.write_bytes(b"\n".join(lines) + b"\n")
    bad, rows = _read(JsonlSource(p, chunk_bytes=64))
    assert rows == {"inference": 1, "gpu": 1}
    by_line = {b.line: b.reason for b in bad}
    assert sorted(by_line) == [2, 3, 6, 7]
    assert "JSON" in by_line[2]
    assert "latency_ms" in by_line[3]
    assert "kind" in by_line[6] and "kind" in by_line[7]


def test_jsonl_chunk_of_one_kind_reads_as_line_by_line(tmp_path: Path) -> None:
    """A file split by kind takes the whole-chunk path; a line of another kind, a bad
    line or a blank line sends the chunk line by line; both give the same rows."""
    event = {**INFERENCE, "ts": "2024-06-03T08:00:00.000Z"}
    events = [orjson.dumps({**event, "latency_ms": 100.0 + i}) for i in range(20)]
    events[7] = orjson.dumps({**event, "latency_ms": -1})  # rejected, line 8
    pure = tmp_path / "pure.jsonl"
    pure.write_bytes(b"\r\n".join(events) + b"\r\n")
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b"\n".join([*events, b"", b'{"kind": "gpu"}']) + b"\n")
    got: dict[str, tuple[list[BadRow], list[float]]] = {}
    for path in (pure, mixed):
        bad: list[BadRow] = []
        chunks = [c for c, _ in JsonlSource(path).chunks(bad)]
        assert len(chunks) == 1
        got[path.name] = (bad, chunks[0]["inference"].columns.latency_ms.tolist())  # type: ignore[attr-defined]
    pure_bad, pure_latency = got["pure.jsonl"]
    mixed_bad, mixed_latency = got["mixed.jsonl"]
    assert pure_latency == mixed_latency and len(pure_latency) == 19
    assert [b.line for b in pure_bad] == [8]
    assert [b.line for b in mixed_bad] == [8, 22]
