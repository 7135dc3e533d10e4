"""``llmwatch replay`` refuses a CSV whose timestamp and value columns it cannot identify."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from stream.cli import main
from stream.replay.readers import CsvSource, open_source

T0 = 1_717_401_600


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _rows(header: str, n: int = 3, cells: str = "1,2,3") -> str:
    body = "".join(f"{T0 + 60 * i},{cells}\n" for i in range(n))
    return (header + "\n" if header else "") + body


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,c,d\n" + _rows("", cells="1,2,3"), r"first row \(a, b, c, d\) names none of its 4"),
        (_rows("", cells="1,2"), "names none of its 3 columns"),
        ("timestamp,a,b\n" + _rows("", cells="1,2"), "cannot tell which column holds the value"),
        ("when,value,host\n" + _rows("", cells="1,h"), "no timestamp column in the header"),
    ],
)
def test_unidentifiable_columns_are_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    src = tmp_path / "series.csv"
    src.write_text(text)
    out = tmp_path / "out"
    assert main(["replay", str(src), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(src) in err
    assert re.search(message, err), err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("text", "columns"),
    [
        (_rows("timestamp,value", cells="1"), (0, 1, None)),
        (_rows("", cells="1"), (0, 1, None)),  # no header: timestamp,value
        (_rows("t,v", cells="1"), (0, 1, None)),  # two columns: by position, as without one
        (_rows("time,series,value", cells="s,1"), (0, 2, 1)),
        (_rows("timestamp,value,label", cells="1,0"), (0, 1, None)),  # labelled series
        (_rows("ts,host,val", cells="h,1"), (0, 2, None)),  # value named, host unused
        (_rows("timestamp,cpu", cells="1"), (0, 1, None)),  # the one other column
        # As one public anomaly set names its columns: the components are not the value.
        (_rows("timestamps,value,anomaly,changepoint,trend", cells="1,0,0,0"), (0, 1, None)),
    ],
)
def test_identifiable_columns_are_read(
    tmp_path: Path, text: str, columns: tuple[int, int, int | None]
) -> None:
    src = tmp_path / "cpu.csv"
    src.write_text(text)
    reader = open_source(src)
    assert isinstance(reader, CsvSource)
    bad: list = []  # type: ignore[type-arg]
    parts = list(reader.chunks(bad))
    ts_i, val_i, _ = columns
    rows = [line.split(",") for line in text.strip().splitlines()]
    data = rows[1:] if not rows[0][0].isdigit() else rows
    assert not bad
    assert len(parts) == 1 and len(parts[0][0]["metric"].columns) == len(data)
    assert reader.table.value.tolist() == [float(r[val_i]) for r in data]
    assert reader.table.ts.tolist() == [float(r[ts_i]) for r in data]


def test_row_numbers_for_timestamps_are_read_five_minutes_apart_and_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("timestamp,value\n" + "".join(f"{i},{i % 7}\n" for i in range(1, 301)))
    dated = tmp_path / "dated.csv"
    dated.write_text(_rows("timestamp,value", n=300, cells="1"))
    with caplog.at_level("WARNING", logger="llmwatch.replay"):
        tables = {}
        for path in (rows, dated):
            source = CsvSource(path)
            ((chunk, _),) = list(source.chunks([]))
            assert len(chunk["metric"].columns) == 300
            tables[path] = source.table.ts
    assert tables[rows].tolist() == [300.0 * i for i in range(1, 301)]
    assert tables[dated].tolist() == [float(T0 + 60 * i) for i in range(300)]
    (warning,) = caplog.records  # the dated file says nothing
    assert str(rows) in warning.getMessage() and "1 to 300 are row numbers" in warning.getMessage()
    assert "one row every 300s" in warning.getMessage()


@pytest.mark.parametrize(
    ("stamps", "row_interval_s", "read"),
    [
        ([1, 2, 3, 5, 6], 1.0, [1, 2, 3, 5, 6]),  # told: seconds
        ([1, 2, 3, 5, 6], 3600.0, [3600, 7200, 10800, 18000, 21600]),  # told: hourly
        ([0, 300, 600, 900], 300.0, [0, 300, 600, 900]),  # seconds from a start of their own
        ([0.0, 0.5, 1.0, 1.5], 300.0, [0.0, 0.5, 1.0, 1.5]),  # fractions are no row numbers
    ],
)
def test_only_whole_numbers_one_apart_are_row_numbers(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    stamps: list[float],
    row_interval_s: float,
    read: list[float],
) -> None:
    path = tmp_path / "s.csv"
    path.write_text("timestamp,value\n" + "".join(f"{t},{i}\n" for i, t in enumerate(stamps)))
    with caplog.at_level("WARNING", logger="llmwatch.replay"):
        source = CsvSource(path, row_interval_s)
        list(source.chunks([]))
    assert source.table.ts.tolist() == read
    (warning,) = caplog.records  # before 1973 either way: said how it was read
    told = f"row numbers: read as one row every {row_interval_s:g}s"
    assert (told in warning.getMessage()) == (stamps[:2] == [1, 2])


def test_a_shift_in_a_row_numbered_csv_pages_unless_told_rows_are_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What some public anomaly sets ship: row numbers, and a sustained shift of 50 rows.
    # Read as seconds this was a 17-minute stream whose budget allows one false alert a
    # week: the shift paged nobody.
    rng = np.random.default_rng(4)
    values = rng.normal(100, 2, 1200)
    values[900:950] += 30
    src = tmp_path / "kpi.csv"
    src.write_text("timestamp,value\n" + "".join(f"{i},{v:.3f}\n" for i, v in enumerate(values, 1)))
    fired = {}
    for interval in ("5m", "1s"):
        out = tmp_path / interval
        args = ["replay", str(src), "--out", str(out), "--quiet", "--no-report"]
        assert main([*args, "--row-interval", interval]) == 0
        alerts = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
        fired[interval] = [a for a in alerts if a["status"] == "firing"]
    (alert,) = fired["5m"]
    assert 900 * 300 <= _epoch(alert["starts_at"]) <= 903 * 300
    assert fired["1s"] == []
    capsys.readouterr()
