"""The replay console prints alerts in event-time order, every one of them."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from schemas.models import Alert
from stream.cli import main
from stream.replay.console import OrderedPrinter, alert_time
from stream.simulate import FleetSpec, default_incidents, write

T0 = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)


def _alert(i: int, status: str, starts: int, ends: int | None = None) -> Alert:
    return Alert.model_validate(
        {
            "alert_id": f"a{i}",
            "fingerprint": f"f{i}",
            "status": status,
            "severity": "warning",
            "detector": "latency",
            "title": f"alert {i}",
            "summary": "",
            "labels": {"alertname": "x", "detector": "latency"},
            "score": 0.9,
            "starts_at": T0 + timedelta(seconds=starts),
            "ends_at": None if ends is None else T0 + timedelta(seconds=ends),
        }
    )


def test_held_alerts_come_out_sorted_by_the_time_they_show() -> None:
    out = io.StringIO()
    show = OrderedPrinter(out)
    arrivals = [
        _alert(1, "firing", 60),
        _alert(2, "resolved", 0, ends=50),  # shows its end: 00:50
        _alert(3, "firing", 10),
        _alert(4, "firing", 60),  # same time as 1: stays after it
    ]
    for a in arrivals:
        show(a)
    assert out.getvalue() == ""
    assert show.flush() == 4
    lines = out.getvalue().splitlines()
    titles = [re.search(r"alert \d", line).group() for line in lines]  # type: ignore[union-attr]
    assert titles == ["alert 3", "alert 2", "alert 1", "alert 4"]
    assert show.flush() == 0  # flushed once


def test_replay_prints_every_alert_in_event_time_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = FleetSpec(duration_s=1800.0, rate=40.0, hosts=3, gpus_per_host=2, seed=3)
    files = write(spec, default_incidents(spec, spec.seed), tmp_path / "sim")
    events = next(p for p in files.paths if p.name == "events.jsonl")
    out = tmp_path / "out"
    assert main(["replay", str(events), "--out", str(out), "--no-report"]) == 0
    printed = [
        datetime.fromisoformat(line[:19]).replace(tzinfo=UTC)
        for line in capsys.readouterr().out.splitlines()
        if line[:4].isdigit()
    ]
    alerts = [Alert.model_validate(orjson.loads(x)) for x in (out / "alerts.jsonl").open("rb")]
    assert len(alerts) >= 5 and len(printed) == len(alerts)
    assert printed == sorted(printed)
    # Every alert of the run, each once (lines show whole seconds).
    assert sorted(alert_time(a).replace(microsecond=0) for a in alerts) == printed
