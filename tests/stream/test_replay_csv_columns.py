"""``llmwatch replay`` refuses a CSV whose timestamp and value columns it cannot identify."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stream.cli import main
from stream.replay.readers import CsvSource, open_source

T0 = 1_717_401_600


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


def test_row_numbers_for_timestamps_are_read_as_seconds_and_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("timestamp,value\n" + "".join(f"{i},{i % 7}\n" for i in range(1, 301)))
    dated = tmp_path / "dated.csv"
    dated.write_text(_rows("timestamp,value", n=300, cells="1"))
    with caplog.at_level("WARNING", logger="llmwatch.replay"):
        for path in (rows, dated):
            ((chunk, _),) = list(CsvSource(path).chunks([]))
            assert len(chunk["metric"].columns) == 300
    (warning,) = caplog.records
    assert str(rows) in warning.getMessage() and "1 to 300" in warning.getMessage()
    assert "row numbers?" in warning.getMessage()
