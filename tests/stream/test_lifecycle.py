"""The alert state machine: pending/firing/resolved, hysteresis, timers, flaps, snapshots."""

from __future__ import annotations

import orjson
import pytest

from schemas.models import AlertStatus
from stream.alerting.labels import finding_labels as alert_labels
from stream.alerting.labels import fingerprint
from stream.lifecycle import Lifecycle
from tests.stream.lifecycle_helpers import T0, finding, lifecycle


def test_fingerprint_is_stable_and_order_independent() -> None:
    a = fingerprint({"alertname": "x", "host": "h1", "model": "m"})
    b = fingerprint({"model": "m", "host": "h1", "alertname": "x"})
    assert a == b and len(a) == 16 and int(a, 16) >= 0
    assert fingerprint({"a": "bc"}) != fingerprint({"ab": "c"})
    labels = alert_labels(finding(scope={"host": "scope-host", "rack": "r1"}))
    assert labels["alertname"] == "latency.ttft_p99" and labels["detector"] == "latency"
    assert labels["host"] == "h1" and labels["rack"] == "r1"  # series wins over scope


def test_for_duration_holds_pending_then_fires_once() -> None:
    lc = lifecycle(defaults={"for_s": 60.0})
    assert lc.observe([finding()], T0) == []
    assert len(lc.pending()) == 1
    assert lc.observe([finding()], T0 + 30) == []
    events = lc.observe([finding()], T0 + 60)
    assert [e.status for e in events] == [AlertStatus.FIRING]
    alert = events[0]
    assert alert.starts_at.timestamp() == T0  # when the condition began
    assert alert.alert_id == f"{alert.fingerprint}-{round(T0 * 1000)}"
    assert lc.observe([finding()], T0 + 90) == []
    assert [a.fingerprint for a in lc.active_alerts()] == [alert.fingerprint]


def test_pending_fires_on_advance_without_new_findings() -> None:
    lc = lifecycle(defaults={"for_s": 60.0})
    lc.observe([finding()], T0)
    assert [e.status for e in lc.advance(T0 + 61)] == [AlertStatus.FIRING]


def test_pending_that_clears_never_fires() -> None:
    lc = lifecycle(defaults={"for_s": 60.0})
    lc.observe([finding()], T0)
    assert lc.observe([finding(0.1, anomalous=False)], T0 + 30) == []
    assert lc.advance(T0 + 600) == [] and lc.pending() == []


def test_hysteresis_band_keeps_firing_and_low_score_resolves() -> None:
    lc = lifecycle()
    assert len(lc.observe([finding(0.9)], T0)) == 1
    # 0.4 is under the fire threshold but above the resolve threshold: still firing.
    assert lc.observe([finding(0.4, anomalous=True)], T0 + 10) == []
    assert len(lc.active_alerts()) == 1
    events = lc.observe([finding(0.2, anomalous=True)], T0 + 20)
    assert [e.status for e in events] == [AlertStatus.RESOLVED]
    assert events[0].ends_at is not None and events[0].ends_at.timestamp() == T0 + 20
    assert events[0].annotations["resolved_reason"] == "recovered"
    assert lc.active_alerts() == []


def test_band_score_alone_does_not_open_an_alert() -> None:
    lc = lifecycle()
    assert lc.observe([finding(0.45, anomalous=True)], T0) == [] and lc.pending() == []


def test_recovery_finding_resolves_regardless_of_score() -> None:
    lc = lifecycle()
    lc.observe([finding(0.9)], T0)
    events = lc.observe([finding(0.9, anomalous=False)], T0 + 5)
    assert [e.status for e in events] == [AlertStatus.RESOLVED]


def test_keep_firing_for_delays_resolution() -> None:
    lc = lifecycle(defaults={"keep_firing_for_s": 120.0})
    lc.observe([finding()], T0)
    assert lc.observe([finding(0.0, anomalous=False)], T0 + 10) == []
    assert lc.advance(T0 + 100) == []
    assert [e.status for e in lc.advance(T0 + 130)] == [AlertStatus.RESOLVED]


def test_keep_firing_for_is_reset_when_the_condition_returns() -> None:
    lc = lifecycle(defaults={"keep_firing_for_s": 120.0})
    lc.observe([finding()], T0)
    lc.observe([finding(0.0, anomalous=False)], T0 + 10)
    assert lc.observe([finding()], T0 + 60) == []  # back before it resolved: no refire
    lc.observe([finding(0.0, anomalous=False)], T0 + 70)
    # Counted from the finding that cleared it again, not from the first clear.
    assert lc.advance(T0 + 189) == []
    assert len(lc.advance(T0 + 190)) == 1


def test_per_detector_rule_overrides_defaults() -> None:
    lc = lifecycle(defaults={"for_s": 300.0}, rules={"gpu_health": {"for_s": 0.0}})
    gpu = finding(detector="gpu_health", kind="gpu.xid", series={"host": "h1", "gpu": "0"})
    events = lc.observe([gpu, finding()], T0)
    assert [e.detector for e in events] == ["gpu_health"]


def test_resolve_timeout_when_series_stops_reporting() -> None:
    lc = lifecycle(resolve_timeout_s=300.0)
    lc.observe([finding()], T0)
    assert lc.advance(T0 + 299) == []
    events = lc.advance(T0 + 300)
    assert [e.status for e in events] == [AlertStatus.RESOLVED]
    assert events[0].annotations["resolved_reason"] == "timeout"


def test_flapping_alert_is_held_firing_instead_of_refiring() -> None:
    lc = lifecycle(flap_window_s=1000.0, flap_threshold=3)
    statuses: list[str] = []
    for i in range(6):
        t = T0 + i * 20
        statuses += [e.status.value for e in lc.observe([finding(0.9)], t)]
        statuses += [e.status.value for e in lc.observe([finding(0.0, anomalous=False)], t + 10)]
    # Two full cycles, then the third start makes it flapping: held, never re-fired.
    assert statuses == ["firing", "resolved", "firing", "resolved", "firing"]
    (held,) = lc.active_alerts()
    assert held.annotations["flapping"] == "true"
    # Once the early starts leave the window the held alert resolves.
    assert lc.advance(T0 + 900) == []
    events = lc.advance(T0 + 1001)
    assert [e.status for e in events] == [AlertStatus.RESOLVED]


def test_alert_id_is_unique_per_firing_instance() -> None:
    lc = lifecycle()
    ids = []
    for _ in range(3):
        ids += [e.alert_id for e in lc.observe([finding()], T0)]
        lc.observe([finding(0.0, anomalous=False)], T0)
    # All three instances start at the same instant: still three distinct ids.
    assert len(ids) == 3 and len(set(ids)) == 3
    assert ids[1] == ids[0] + "-1" and ids[2] == ids[0] + "-2"


def test_event_time_never_runs_backwards() -> None:
    lc = lifecycle(defaults={"for_s": 60.0})
    lc.observe([finding()], T0)
    lc.advance(T0 + 30)
    assert lc.observe([finding()], T0 - 1000) == []  # late call reads as T0 + 30
    assert lc.now == T0 + 30


def test_links_are_rendered_from_templates() -> None:
    lc = lifecycle(
        rules={
            "latency": {
                "runbook_url": "https://rb/{detector}/{alertname}",
                "dashboard_url": "https://dash?model={model}&fp={fingerprint}&x={missing}",
            }
        }
    )
    (alert,) = lc.observe([finding()], T0)
    assert alert.links.runbook == "https://rb/latency/latency.ttft_p99"
    assert alert.links.dashboard == f"https://dash?model=m1&fp={alert.fingerprint}&x="


def test_alert_fields_from_the_finding() -> None:
    lc = lifecycle()
    f = finding(
        0.8,
        observed=900.0,
        expected=200.0,
        lower=float("-inf"),
        upper=400.0,
        severity="critical",
        explanation="p99 TTFT 900 ms vs 200 ms baseline",
    )
    (alert,) = lc.observe([f], T0)
    assert alert.severity == "critical" and alert.score == 0.8
    assert alert.observed == 900.0 and alert.expected == 200.0
    assert alert.bounds.lower is None and alert.bounds.upper == 400.0
    assert alert.summary == f.explanation and "model=m1" in alert.title
    assert alert.labels == {
        "alertname": "latency.ttft_p99",
        "detector": "latency",
        "host": "h1",
        "model": "m1",
    }


def test_snapshot_restore_mid_sequence_gives_same_events() -> None:
    cfg = {"defaults": {"for_s": 30.0, "keep_firing_for_s": 20.0}}
    a = lifecycle(**cfg)
    a.observe([finding(), finding(series={"model": "m2", "host": "h2"})], T0)
    a.advance(T0 + 40)
    blob = a.snapshot()
    orjson.loads(blob)  # plain JSON, not pickle
    b = Lifecycle.restore(blob, a.config)
    assert b.snapshot() == blob
    for lc in (a, b):
        lc.observe([finding(0.0, anomalous=False)], T0 + 50)
    later = [(T0 + 60, []), (T0 + 90, [finding(series={"model": "m3", "host": "h1"})])]
    for t, fs in later:
        ea = [e.model_dump() for e in a.observe(fs, t)]
        eb = [e.model_dump() for e in b.observe(fs, t)]
        assert ea == eb
    assert a.snapshot() == b.snapshot()


def test_restore_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="format"):
        Lifecycle.restore(orjson.dumps({"format": 99}))
