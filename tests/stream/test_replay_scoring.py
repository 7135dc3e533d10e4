"""Alert <-> incident matching and the scored summary, on hand-made alerts and labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from schemas.models import Alert, AlertStatus, Severity
from stream.replay.scoring import Incident, load_labels, match, summarize

T0 = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)


def _alert(
    aid: str, at_s: float, labels: dict[str, str], status: str = "firing", detector: str = "latency"
) -> Alert:
    return Alert(
        alert_id=aid,
        fingerprint=f"fp-{aid}",
        status=AlertStatus(status),
        severity=Severity.WARNING,
        detector=detector,
        title=f"t {aid}",
        summary="",
        labels={"alertname": "x", "detector": detector, **labels},
        score=0.9,
        starts_at=T0 + timedelta(seconds=at_s),
    )


def _inc(iid: str, kind: str, start: float, end: float, target: dict[str, str]) -> Incident:
    return Incident(iid, kind, target, T0.timestamp() + start, T0.timestamp() + end)


INCIDENTS = [
    _inc("i1", "latency_regression", 100, 200, {"model": "m1", "model_version": "v2"}),
    _inc("i2", "gpu_xid", 300, 400, {"host": "h1", "gpu_uuid": "GPU-1"}),
    _inc("i3", "error_burst", 500, 600, {"gateway": "g1", "model": "m2"}),
]
ALERTS = [
    _alert("a1", 130, {"model": "m1", "model_version": "v2", "gateway": "g9"}),  # i1, 30 s
    _alert("a1", 130, {"model": "m1", "model_version": "v2", "gateway": "g9"}, "resolved"),
    _alert("a2", 190, {"model": "m1"}),  # i1 again (shared label model only)
    _alert("a3", 340, {"host": "h1"}, detector="gpu_health"),  # i2, 40 s
    _alert("a4", 650, {"host": "h1"}, detector="gpu_health"),  # after i2 end + grace? no: 250 s
    _alert("a5", 350, {"model": "m1", "model_version": "v1"}),  # wrong version: false
    _alert("a6", 90, {"model": "m1", "model_version": "v2"}),  # before i1 starts: false
    _alert("a7", 450, {"tenant": "t"}),  # shares no label: false
]


def test_matching_rule() -> None:
    got = {m.alert.alert_id: m.incidents for m in match(ALERTS, INCIDENTS, grace_s=300)}
    assert got == {
        "a1": ["i1"],
        "a2": ["i1"],
        "a3": ["i2"],
        "a4": ["i2"],
        "a5": [],
        "a6": [],
        "a7": [],
    }
    tight = {m.alert.alert_id: m.incidents for m in match(ALERTS, INCIDENTS, grace_s=60)}
    assert tight["a4"] == []


def test_summary_exact_numbers() -> None:
    s = summarize(ALERTS, INCIDENTS, n_series=10, span_s=86400.0 / 2, grace_s=300)
    assert s["firing_alerts"] == 7  # a1's resolution is not a second alert
    assert s["matched_alerts"] == 4
    assert s["precision"] == pytest.approx(4 / 7)
    assert s["recall"] == pytest.approx(2 / 3)
    p, r = 4 / 7, 2 / 3
    assert s["f1"] == pytest.approx(2 * p * r / (p + r))
    assert s["false_alerts"] == 3
    assert s["false_alerts_per_series_day"] == pytest.approx(3 / 5)  # 10 series x 0.5 day
    assert s["delay_s"]["p50"] == pytest.approx(35.0)
    assert s["delay_s"]["max"] == pytest.approx(40.0)
    assert s["per_kind"]["latency_regression"]["recall"] == 1.0
    assert s["per_kind"]["latency_regression"]["delay_s"]["p50"] == pytest.approx(30.0)
    assert s["per_kind"]["error_burst"]["detected"] == 0
    assert s["per_detector"]["gpu_health"] == {"firing": 2, "matched": 2, "precision": 1.0}


def test_no_alerts_and_no_incidents() -> None:
    s = summarize([], INCIDENTS, n_series=1, span_s=3600)
    assert s["precision"] is None and s["recall"] == 0.0 and s["delay_s"]["p50"] is None
    s = summarize(ALERTS, [], n_series=1, span_s=3600)
    assert s["recall"] is None and s["precision"] == 0.0


def test_load_labels_from_simulator_format(tmp_path: Path) -> None:
    p = tmp_path / "labels.jsonl"
    rows = [
        {
            "incident_id": "inc-001",
            "kind": "gpu_xid",
            "target": {"host": "h1"},
            "start": "2024-06-03T08:05:00.000Z",
            "end": "2024-06-03T08:06:00.000Z",
            "severity": 1,
        },
        {"kind": "x", "start": 1717401600, "end": "2024-06-03 08:01:00"},
    ]
    p.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    got = load_labels(p)
    assert got[0].start == T0.timestamp() + 300 and got[0].end == T0.timestamp() + 360
    assert got[1].incident_id == "incident-2" and got[1].end - got[1].start == 60
    p.write_bytes(orjson.dumps(rows[0]) + b"\n{oops\n")
    with pytest.raises(ValueError, match=r"labels.jsonl:2"):
        load_labels(p)
