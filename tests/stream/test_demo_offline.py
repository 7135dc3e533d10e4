"""``llmwatch demo`` end to end on a tiny fleet: alert lines printed, report written."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.cli import main


def test_demo_prints_alert_lines_and_report_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert (
        main(
            [
                "demo",
                "--offline",
                "--duration",
                "6m",
                "--rate",
                "50",
                "--seed",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    lines = text.splitlines()
    alert_lines = [ln for ln in lines if "  FIRING  " in ln or "  RESOLVED  " in ln]
    assert alert_lines, text
    # One line per alert event, each with time, status, severity and title.
    n_events = len((out / "alerts.jsonl").read_bytes().splitlines())
    assert len(alert_lines) == n_events
    assert lines[-1].startswith("report: ") and lines[-1].endswith("report.html")
    assert Path(lines[-1].removeprefix("report: ")).is_file()
    (scored,) = [ln for ln in lines if ln.startswith("incidents ")]
    # The notifier's stages ran over the replayed alerts: pages, not just alerts.
    assert "; notifications " in scored and "held by inhibition" in scored
    import json

    notes = json.loads((out / "summary.json").read_text())["notifications"]
    assert notes["pages"] <= notes["alerts_notified"] <= notes["alerts_seen_firing"]
    assert "notifications / incident" in (out / "report.html").read_text()
