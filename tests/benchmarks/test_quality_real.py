"""benchmarks.quality_real's missed-samples run: thinned copies of a labelled folder,
replayed through the product and scored together, and the row the report gives it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from benchmarks.quality_real import run, thinned
from benchmarks.report import real_rows

ROWS = 2000


def _folder(root: Path) -> Path:
    """Two 5-minute series with a labelled shift (``timestamp,value,label``)."""
    root.mkdir(exist_ok=True)
    rng = np.random.default_rng(3)
    for name in ("a.csv", "b.csv"):
        with (root / name).open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["timestamp", "value", "label"])
            for i in range(ROWS):
                shift = 1500 <= i < 1520
                value = 50.0 + rng.normal() + (40.0 if shift else 0.0)
                out.writerow([f"{1_600_000_000 + 300 * i}", f"{value:.4f}", int(shift)])
    return root


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def test_a_thinned_copy_misses_that_share_of_rows_the_same_way_for_a_seed(
    tmp_path: Path,
) -> None:
    data = _folder(tmp_path / "data")
    (data / "windows.json").write_text(json.dumps({"a.csv": [], "b.csv": []}))
    one = thinned(data, tmp_path / "one", 0.25, seed=0)
    again = thinned(data, tmp_path / "again", 0.25, seed=0)
    other = thinned(data, tmp_path / "other", 0.25, seed=1)
    full = _rows(data / "a.csv")
    kept = _rows(one / "a.csv")
    assert kept[0] == full[0]  # the header
    assert 0.70 * ROWS < len(kept) - 1 < 0.80 * ROWS
    assert set(map(tuple, kept[1:])) <= set(map(tuple, full[1:]))  # rows left out, none changed
    assert kept == _rows(again / "a.csv")
    assert kept != _rows(other / "a.csv")
    assert kept != _rows(one / "b.csv")  # each file its own choice
    assert (one / "windows.json").read_text() == (data / "windows.json").read_text()


def test_the_missed_run_scores_every_copy_together(tmp_path: Path) -> None:
    data = _folder(tmp_path)
    full = run(data, 1, None)
    missed = run(data, 1, None, missed=0.1, copies=2)
    assert full["files"] == 2 and full["missed_share"] == 0.0
    assert missed["files"] == 4 and missed["copies"] == 2 and missed["missed_share"] == 0.1
    assert missed["overall"]["windows"] == 2 * full["overall"]["windows"] == 4
    assert 0.85 * 2 * full["rows"] < missed["rows"] < 0.95 * 2 * full["rows"]
    # A 40-scale shift is found in every copy, with or without a tenth of its rows.
    assert full["overall"]["incident_recall"] == 1.0
    assert missed["overall"]["incident_recall"] == 1.0


def test_the_report_gives_the_missed_run_its_own_row() -> None:
    group = {"nab_onset": 48.9, "false_alerts_per_series_week": {"outside_windows": 0.191}}
    b = {
        "quality_real": {"result": {"overall": {"nab_onset": 50.9}}},
        "quality_real_missed": {"result": {"missed_share": 0.1, "copies": 3, "overall": group}},
    }
    rows = [r for r in real_rows(b) if r.startswith("| overall")]
    assert rows[0].startswith("| overall | 50.9 |")
    assert rows[1].startswith("| overall, 10% of rows missing (3 copies) | 48.9 |")
    assert "| 0.191 |" in rows[1]
    assert len(real_rows({"quality_real": b["quality_real"]})) < len(real_rows(b))
