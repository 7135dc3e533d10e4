"""What a replay leaves in --out: alerts.jsonl, scores CSVs, bad_rows.jsonl, summary.json."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from schemas.models import dump_json

from .readers import SeriesTable
from .runner import ReplayResult


def write_alerts(path: Path, result: ReplayResult) -> Path:
    with path.open("wb") as fh:
        for a in result.alerts:
            fh.write(dump_json(a) + b"\n")
    return path


def write_bad_rows(path: Path, result: ReplayResult) -> Path:
    with path.open("wb") as fh:
        for b in result.bad_rows:
            fh.write(orjson.dumps({"file": b.source, "line": b.line, "reason": b.reason}) + b"\n")
    return path


def write_scores(path: Path, table: SeriesTable) -> Path:
    """One row per input data row, input order. Rows that could not be read keep their
    original text and get an empty score (they are listed in bad_rows.jsonl)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        head = ["timestamp", "value", "anomaly_score"]
        w.writerow([*head, "series"] if table.has_series_column else head)
        scores = table.scores.tolist()
        for i, (ts, val) in enumerate(zip(table.ts_text, table.value_text, strict=True)):
            ok = bool(table.ok[i])
            s = scores[i]
            cell = f"{min(max(s if s == s else 0.0, 0.0), 1.0):.6f}" if ok else ""
            row = [ts, val, cell]
            w.writerow([*row, table.series[i]] if table.has_series_column else row)
    return path


def scores_paths(out: Path, tables: Sequence[SeriesTable]) -> list[Path]:
    """scores.csv for one CSV input; scores-<file stem>.csv each when there are several."""
    if len(tables) == 1:
        return [out / "scores.csv"]
    return [out / f"scores-{t.path.name.split('.')[0]}.csv" for t in tables]


def write_summary(path: Path, summary: dict[str, Any], result: ReplayResult) -> Path:
    data = {
        **summary,
        "rows": result.rows,
        "bad_rows": len(result.bad_rows),
        "elapsed_s": round(result.elapsed_s, 3),
        "rows_per_s": round(result.n_rows / result.elapsed_s) if result.elapsed_s else None,
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
