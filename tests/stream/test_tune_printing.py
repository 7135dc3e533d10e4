"""``llmwatch tune`` prints rounded figures; trials.json keeps the exact ones."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from stream.cli import main
from stream.commands.tune import labelled_summary_line, summary_line
from stream.simulate import FleetSpec, default_incidents, write

# A figure with more digits than anyone reads: 0.6666666666666666, 12.345678901.
_LONG = re.compile(r"\d\.\d{4,}")


def test_summary_lines_round_every_figure() -> None:
    rows: list[dict[str, Any]] = [
        {
            "trial": 0,
            "objective": 0.1,
            "precision": None,
            "recall": None,
            "delay_p50_s": None,
            "false_alerts_per_series_day": None,
        },
        {
            "trial": 1,
            "objective": 0.612345678,
            "precision": 2 / 3,
            "recall": 0.8,
            "delay_p50_s": 12.345678901,
            "false_alerts_per_series_day": 1 / 3,
        },
    ]
    line = summary_line(rows)
    assert line == (
        "2 trials; best trial 1: objective 0.612, precision 66.7%, recall 80.0%, "
        "median delay 12.3 s, 0.33 false alerts per series-day"
    )
    assert "n/a" in summary_line(rows[:1])
    labelled = [
        {
            "trial": 3,
            "objective": 23.456789,
            "recall": 5 / 7,
            "false_alerts_per_series_week": {
                "overall": 0.2857142857,
                "series_without_anomalies": None,
            },
        }
    ]
    assert labelled_summary_line(labelled) == (
        "1 trials; best trial 3: NAB score (alert onsets) 23.5, recall 71.4%, achieved "
        "budget 0.29 false alerts per series-week (n/a on series without anomalies)"
    )


def test_tune_command_output_has_no_long_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = FleetSpec(duration_s=900.0, rate=20.0, hosts=3, gpus_per_host=1, seed=5)
    files = write(spec, default_incidents(spec, spec.seed), tmp_path / "sim")
    events = next(p for p in files.paths if p.name == "events.jsonl")
    labels = next(p for p in files.paths if p.name == "labels.jsonl")
    out = tmp_path / "out"
    argv = ["tune", "--events", str(events), "--labels", str(labels), "--trials", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()[0]
    assert printed.startswith("2 trials; best trial") and not _LONG.search(printed), printed
    trials = json.loads((out / "trials.json").read_text())
    rows = trials if isinstance(trials, list) else trials["trials"]
    assert len(rows) == 2
