"""``llmwatch replay`` end to end on real files: CSV series and a simulated fleet."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import orjson
import pytest

from schemas.models import Alert
from stream.cli import main
from stream.simulate import FleetSpec, default_incidents, write


def test_csv_series_scores_one_row_per_input_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "queue_depth.csv"
    lines = ["timestamp,value"]
    for i in range(600):
        value = 10.0 + (i % 7) + (200.0 if 400 <= i < 420 else 0.0)
        lines.append(f"2024-06-03T08:{i // 60:02d}:{i % 60:02d}Z,{value}")
    lines.insert(49, "garbage,1")  # file line 50
    p.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["replay", str(p), "--out", str(out), "--quiet"]) == 0
    with (out / "scores.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 601  # every input data row, the bad one included
    assert [r["timestamp"] for r in rows] == [ln.split(",")[0] for ln in lines[1:]]
    scores = [float(r["anomaly_score"]) for r in rows if r["anomaly_score"] != ""]
    assert len(scores) == 600 and all(0.0 <= s <= 1.0 for s in scores)
    assert rows[48]["anomaly_score"] == ""  # the garbage row (file line 50)
    bad = [orjson.loads(x) for x in (out / "bad_rows.jsonl").read_bytes().splitlines()]
    assert [(b["line"], b["reason"].split(":")[0]) for b in bad] == [(50, "timestamp")]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "queue_depth" in html
    assert "1 bad rows" in capsys.readouterr().err


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fleet")
    spec = FleetSpec(seed=101, duration_s=480.0, rate=60.0, hosts=3, gpus_per_host=2)
    write(spec, default_incidents(spec, 101), d)
    with (d / "events.jsonl").open("ab") as fh:
        fh.write(b"{broken\n")
    return d


def test_replay_simulated_fleet_writes_alerts_summary_report(fleet: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc = main(
        [
            "replay",
            str(fleet / "events.jsonl"),
            "--labels",
            str(fleet / "labels.jsonl"),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    alerts = [
        Alert.model_validate_json(x) for x in (out / "alerts.jsonl").read_bytes().splitlines()
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["incidents"] == 10
    assert summary["bad_rows"] == 1
    assert set(summary["per_kind"]) == {
        json.loads(x)["kind"] for x in (fleet / "labels.jsonl").read_text().splitlines()
    }
    firing = {a.alert_id for a in alerts if a.status.value == "firing"}
    assert summary["firing_alerts"] == len(firing)
    html = (out / "report.html").read_text()
    assert "<h2>Alerts</h2>" in html
    assert html.count("<tr><td>") >= len(alerts)  # one table row per alert event (+ bad rows)
    assert html.count("data:image/png;base64,") >= 1
    for a in alerts[:3]:
        assert a.title in html
