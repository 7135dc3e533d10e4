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


def test_replay_counts_pages_with_the_notifier_config_and_silences(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = str(fleet / "events.jsonl")
    args = ["replay", events, "--labels", str(fleet / "labels.jsonl"), "--quiet", "--no-report"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    plain = json.loads((tmp_path / "a" / "summary.json").read_text())["notifications"]
    alerts = [
        Alert.model_validate_json(x)
        for x in (tmp_path / "a" / "alerts.jsonl").read_bytes().splitlines()
    ]
    first = min((a for a in alerts if a.status.value == "firing"), key=lambda a: a.starts_at)
    # A silence over the whole run for the first alert's name; one group per alert (no
    # grouping) from a notifier config file.
    name = first.labels.get("alertname", first.title)
    silences = tmp_path / "silences.json"
    silence = {
        "id": "s1",
        "matchers": [f'alertname="{name}"'],
        "starts_at": 0,
        "ends_at": 4e9,
        "created_by": "test",
    }
    silences.write_text(json.dumps([silence]))
    notify = tmp_path / "notify.yaml"
    notify.write_text(
        "receivers: [{name: c, type: console}]\n"
        "route: {receiver: c, group_by: ['...'], group_wait: 0s}\n"
    )
    more = ["--notify-config", str(notify), "--silences", str(silences)]
    assert main([*args, *more, "--out", str(tmp_path / "b")]) == 0
    tuned = json.loads((tmp_path / "b" / "summary.json").read_text())["notifications"]
    assert plain["held_by_silences"] == 0 and tuned["held_by_silences"] >= 1
    assert tuned["folded_by_grouping"] == 0  # group_by [...]: every alert on its own
    printed = capsys.readouterr().out
    assert f"{tuned['held_by_silences']} by silences" in printed
    # Without labels the pages are still counted and printed.
    assert (
        main(["replay", events, "--quiet", "--no-report", *more, "--out", str(tmp_path / "c")]) == 0
    )
    assert "notifications " in capsys.readouterr().out
    silences.write_text('[{"id": "s2"}]')
    assert main([*args, *more, "--out", str(tmp_path / "d")]) == 2
    assert "silence [0]: KeyError" in capsys.readouterr().err
