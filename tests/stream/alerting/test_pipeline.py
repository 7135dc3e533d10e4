"""The notifier's pipeline in Alertmanager's order, on an injected clock (nothing sleeps)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from schemas.models import Alert
from schemas.notification import Notification
from stream.alerting.inhibit import default_inhibit_rules
from stream.alerting.pipeline import Pipeline
from stream.alerting.route import Route
from stream.alerting.silences import SilenceStore, ack_key, silence_key

T0 = 1_700_000_000.0
ROUTE = {
    "receiver": "chat",
    "group_by": ["alertname", "host"],
    "group_wait": "30s",
    "group_interval": "5m",
    "repeat_interval": "4h",
    "routes": [
        {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True},
        {"receiver": "chat"},
    ],
}


def alert(fp: str, name: str, status: str = "firing", t: float = T0, **labels: str) -> Alert:
    severity = labels.pop("severity", "error")
    detector = labels.pop("detector", name.split(".")[0])
    return Alert.model_validate(
        {
            "alert_id": f"{fp}-1",
            "fingerprint": fp,
            "status": status,
            "severity": severity,
            "detector": detector,
            "title": name,
            "summary": f"{name} on {labels}",
            "labels": {"alertname": name, "detector": detector, **labels},
            "score": 0.9,
            "starts_at": datetime.fromtimestamp(T0, UTC),
            "ends_at": datetime.fromtimestamp(t, UTC) if status == "resolved" else None,
        }
    )


def pipeline(route: dict[str, Any] | None = None, **kw: Any) -> Pipeline:
    return Pipeline(Route.model_validate(route or ROUTE), default_inhibit_rules(), **kw)


def notes(p: Pipeline, now: float) -> list[Notification]:
    return [f.note for f in p.flush(now) if f.note is not None]


def fps(note: Notification) -> list[tuple[str, str]]:
    return [(a.alert.fingerprint, str(a.alert.status)) for a in note.alerts]


def test_group_wait_batches_an_incident_into_one_notification() -> None:
    p = pipeline()
    p.ingest(alert("a", "error_rate.high", host="h1", gateway="g1"), T0)
    p.ingest(alert("b", "error_rate.high", host="h1", gateway="g2"), T0 + 5)
    p.ingest(alert("c", "error_rate.high", host="h2", gateway="g1"), T0 + 6)
    assert notes(p, T0 + 29) == []
    out = notes(p, T0 + 30)
    assert [(n.receiver, n.reason, fps(n)) for n in out] == [
        ("chat", "initial", [("a", "firing"), ("b", "firing")])
    ]
    assert out[0].group_key == '{}/1:{alertname="error_rate.high",host="h1"}'
    (late,) = notes(p, T0 + 36)  # h2's group waits its own group_wait
    assert fps(late) == [("c", "firing")]
    assert notes(p, T0 + 100) == []


def test_a_cause_arriving_within_group_wait_holds_its_symptoms() -> None:
    """The demo's XID case: symptoms first, the GPU alert 10 s later; one page."""
    p = pipeline()
    for i, gw in enumerate(("g1", "g2", "g3")):
        p.ingest(alert(f"e{i}", "error_rate.high", host="h2", gateway=gw, model="m"), T0)
    p.ingest(alert("gpu", "gpu.xid", detector="gpu_health", host="h2", gpu_uuid="G1"), T0 + 10)
    first = notes(p, T0 + 30)
    assert first == []  # the symptoms' group is due first, and held
    (page,) = notes(p, T0 + 40)
    assert fps(page) == [("gpu", "firing")]
    assert p.stats.held_only("inhibited") == 3 and p.stats.pages == 1
    # The cause resolves while the symptoms still fire: now they are news.
    p.ingest(
        alert(
            "gpu", "gpu.xid", "resolved", T0 + 100, detector="gpu_health", host="h2", gpu_uuid="G1"
        ),
        T0 + 100,
    )
    out = notes(p, T0 + 340)
    assert sorted((n.reason, len(n.alerts)) for n in out) == [("initial", 3), ("resolved", 1)]


def test_updates_wait_for_group_interval_and_resolves_are_told_once() -> None:
    p = pipeline()
    p.ingest(alert("a", "latency.p99", host="h1"), T0)
    assert [n.reason for n in notes(p, T0 + 30)] == ["initial"]
    p.ingest(alert("b", "latency.p99", host="h1"), T0 + 60)
    assert notes(p, T0 + 100) == []  # group_interval not yet up
    (upd,) = notes(p, T0 + 330)
    assert upd.reason == "update" and fps(upd) == [("a", "firing"), ("b", "firing")]
    p.ingest(alert("a", "latency.p99", "resolved", T0 + 400, host="h1"), T0 + 400)
    (res,) = notes(p, T0 + 630)
    assert res.reason == "update" and fps(res) == [("b", "firing"), ("a", "resolved")]
    p.ingest(alert("b", "latency.p99", "resolved", T0 + 700, host="h1"), T0 + 700)
    (last,) = notes(p, T0 + 930)
    assert last.reason == "resolved" and last.status == "resolved" and last.phase == "resolved"
    assert len(p.groups) == 0  # an empty group is forgotten
    # Two pages: the first and the update that added b. The update that only told a's
    # resolve is a notification but no page (it counted as one until 2026-12-07).
    assert p.stats.notifications == {"initial": 1, "update": 2, "resolved": 1}
    assert p.stats.pages == 2


def test_an_alert_that_fires_and_resolves_within_group_wait_pages_nobody() -> None:
    p = pipeline()
    p.ingest(alert("a", "latency.p99", host="h1"), T0, token=(0, 1))
    p.ingest(alert("a", "latency.p99", "resolved", T0 + 10, host="h1"), T0 + 10, token=(0, 2))
    flushed = p.flush(T0 + 30)
    assert [f.note for f in flushed] == [None]
    assert flushed[0].tokens == [(0, 1), (0, 2)]  # both settled by the quiet flush
    # ... but counted: nothing in its group was told, so it is held as transient.
    assert flushed[0].held == {"transient": 1} and p.stats.held["transient"] == {"a-1"}
    assert p.stats.held_only("transient") == 1 and len(p.groups) == 0


def test_an_alert_that_fires_and_resolves_between_looks_is_told_beside_the_open_incident() -> None:
    p = pipeline()
    p.ingest(alert("a", "latency.p99", host="h1"), T0)
    assert [n.reason for n in notes(p, T0 + 30)] == ["initial"]
    p.ingest(alert("b", "latency.p99", host="h1"), T0 + 60, token=(0, 7))
    p.ingest(alert("b", "latency.p99", "resolved", T0 + 200, host="h1"), T0 + 200, token=(0, 8))
    (flushed,) = p.flush(T0 + 330)
    assert flushed.note is not None and flushed.note.reason == "update"
    assert fps(flushed.note) == [("a", "firing"), ("b", "resolved")]
    assert flushed.tokens == [(0, 7), (0, 8)] and flushed.held == {}
    assert p.stats.told_resolved == {"b-1"} and p.stats.held["transient"] == set()
    assert notes(p, T0 + 630) == []  # told once


def test_an_unseen_alert_is_told_when_the_incident_it_joins_closes() -> None:
    p = pipeline()
    p.ingest(alert("a", "latency.p99", host="h1"), T0)
    notes(p, T0 + 30)
    p.ingest(alert("b", "latency.p99", host="h1"), T0 + 60)
    p.ingest(alert("b", "latency.p99", "resolved", T0 + 100, host="h1"), T0 + 100)
    p.ingest(alert("a", "latency.p99", "resolved", T0 + 200, host="h1"), T0 + 200)
    (last,) = notes(p, T0 + 330)
    assert last.reason == "resolved" and fps(last) == [("a", "resolved"), ("b", "resolved")]
    assert len(p.groups) == 0


def test_an_unseen_alert_goes_through_inhibition_and_silences() -> None:
    store = SilenceStore()
    p = pipeline({"receiver": "r", "group_by": ["host"], "group_wait": "30s"}, silences=store)
    p.ingest(alert("gpu", "gpu.xid", detector="gpu_health", host="h2", gpu_uuid="G1"), T0)
    assert [fps(n) for n in notes(p, T0 + 30)] == [[("gpu", "firing")]]
    # A symptom of the firing cause fires and resolves between looks: inhibited, not told.
    p.ingest(alert("e", "error_rate.high", host="h2", gateway="g1"), T0 + 60)
    p.ingest(alert("e", "error_rate.high", "resolved", T0 + 90, host="h2", gateway="g1"), T0 + 90)
    sil = {"id": "s", "matchers": ['gateway="g2"'], "starts_at": T0, "ends_at": T0 + 3600}
    store.apply(silence_key("s"), json.dumps(dict(sil, created_by="x")).encode())
    p.ingest(alert("q", "latency.p99", host="h3", gateway="g2"), T0 + 60)
    p.ingest(alert("q", "latency.p99", "resolved", T0 + 80, host="h3", gateway="g2"), T0 + 80)
    out = p.flush(T0 + 330)
    assert [(f.note, f.held) for f in out] == [(None, {"inhibited": 1}), (None, {"silenced": 1})]
    assert p.stats.held["inhibited"] == {"e-1"} and p.stats.held["silenced"] == {"q-1"}
    assert p.stats.told_resolved == set()


def test_a_receiver_without_send_resolved_hears_only_firing_news() -> None:
    # The same alerts to a pager told of resolves and a chat that is not (Alertmanager's
    # send_resolved: false): chat gets the first page and the update that adds an alert,
    # without the resolved one, and nothing when alerts only resolve.
    route = {**ROUTE, "routes": [{"receiver": "pager", "continue": True}, {"receiver": "chat"}]}
    p = pipeline(route, quiet_on_resolve=["chat"])
    p.ingest(alert("a", "latency.p99", host="h1"), T0)
    p.ingest(alert("b", "latency.p99", host="h1"), T0 + 5)
    first = notes(p, T0 + 30)
    assert [(n.receiver, n.reason, fps(n)) for n in first] == [
        (r, "initial", [("a", "firing"), ("b", "firing")]) for r in ("pager", "chat")
    ]
    p.ingest(alert("a", "latency.p99", "resolved", T0 + 100, host="h1"), T0 + 100, token=(0, 3))
    flushed = p.flush(T0 + 330)
    assert [(f.receiver, f.note and fps(f.note)) for f in flushed] == [
        ("pager", [("b", "firing"), ("a", "resolved")]),
        ("chat", None),
    ]
    assert all(f.tokens == [(0, 3)] for f in flushed)  # settled by the quiet look too
    p.ingest(alert("c", "latency.p99", host="h1"), T0 + 400)
    p.ingest(alert("b", "latency.p99", "resolved", T0 + 410, host="h1"), T0 + 410)
    news = {n.receiver: (n.reason, fps(n)) for n in notes(p, T0 + 630)}
    assert news == {
        "pager": ("update", [("c", "firing"), ("b", "resolved")]),
        "chat": ("update", [("c", "firing")]),
    }
    p.ingest(alert("c", "latency.p99", "resolved", T0 + 700, host="h1"), T0 + 700)
    assert [(n.receiver, n.reason) for n in notes(p, T0 + 930)] == [("pager", "resolved")]
    assert len(p.groups) == 0  # the quiet group closed too: nothing left open
    # Between looks, an alert that came and went is transient to the quiet receiver.
    p.ingest(alert("d", "latency.p99", host="h1"), T0 + 1000)
    notes(p, T0 + 1030)
    p.ingest(alert("e", "latency.p99", host="h1"), T0 + 1100)
    p.ingest(alert("e", "latency.p99", "resolved", T0 + 1200, host="h1"), T0 + 1200)
    out = {f.receiver: (f.note and fps(f.note), f.held) for f in p.flush(T0 + 1330)}
    assert out == {
        "pager": ([("d", "firing"), ("e", "resolved")], {}),
        "chat": (None, {"transient": 1}),
    }


def test_repeat_interval_and_acknowledgement() -> None:
    store = SilenceStore()
    p = pipeline(silences=store)
    p.ingest(alert("a", "latency.p99", host="h1"), T0)
    notes(p, T0 + 30)
    assert [n.reason for n in notes(p, T0 + 30 + 4 * 3600)] == ["repeat"]
    ack = {"fingerprint": "a", "alert_id": "a-1", "by": "alice", "at": T0, "expires_at": T0 + 9e5}
    store.apply(ack_key("a"), json.dumps(ack).encode())
    p.touch("a", T0 + 5 * 3600)
    (acked,) = notes(p, T0 + 5 * 3600)
    assert acked.reason == "acknowledged" and acked.phase == "acknowledged"
    assert acked.alerts[0].acked_by == "alice"
    # Acknowledged: no more reminders.
    assert notes(p, T0 + 20 * 3600) == []


def test_a_silence_holds_a_firing_alert_but_not_the_resolve_of_one_already_told() -> None:
    store = SilenceStore()
    p = pipeline(silences=store)
    sil = {
        "id": "s",
        "matchers": ['host="h1"'],
        "starts_at": T0,
        "ends_at": T0 + 3600,
        "created_by": "x",
    }
    p.ingest(alert("told", "latency.p99", host="h2"), T0)
    assert len(notes(p, T0 + 30)) == 1
    store.apply(silence_key("s"), json.dumps(sil).encode())
    p.ingest(alert("quiet", "latency.p99", host="h1"), T0 + 40)
    assert notes(p, T0 + 70) == [] and p.stats.held_only("silenced") == 1
    sil2 = dict(sil, id="s2", matchers=['host="h2"'])
    store.apply(silence_key("s2"), json.dumps(sil2).encode())
    p.ingest(alert("told", "latency.p99", "resolved", T0 + 100, host="h2"), T0 + 100)
    (res,) = notes(p, T0 + 330)
    assert fps(res) == [("told", "resolved")]  # the incident that was paged closes


def test_a_resolve_takes_the_route_its_firing_took() -> None:
    p = pipeline()
    p.ingest(alert("a", "gpu.xid", detector="gpu_health", host="h9", severity="critical"), T0)
    assert sorted(n.receiver for n in notes(p, T0 + 30)) == ["chat", "pager"]
    # The resolve says warning (a later finding was milder): it still closes the page.
    p.ingest(
        alert(
            "a",
            "gpu.xid",
            "resolved",
            T0 + 60,
            detector="gpu_health",
            host="h9",
            severity="warning",
        ),
        T0 + 60,
    )
    out = notes(p, T0 + 330)
    assert sorted((n.receiver, n.reason) for n in out) == [
        ("chat", "resolved"),
        ("pager", "resolved"),
    ]
    assert all(n.alerts[0].severity == "critical" for n in out)


def test_default_rules_silent_gateway_and_version_regression() -> None:
    p = pipeline({"receiver": "r", "group_by": ["..."], "group_wait": 0})
    p.ingest(alert("gw", "traffic.gateway_silent", detector="traffic", gateway="g1"), T0)
    p.ingest(alert("drop", "traffic.rate_drop", detector="traffic", gateway="g1", model="m"), T0)
    p.ingest(alert("err", "error_rate.high", detector="error_rate", gateway="g1", model="m"), T0)
    p.ingest(alert("other", "error_rate.high", detector="error_rate", gateway="g2", model="m"), T0)
    p.ingest(
        alert(
            "reg",
            "version_regression.latency",
            detector="version_regression",
            model="m",
            model_version="v4",
            gateway="g3",
        ),
        T0,
    )
    p.ingest(
        alert(
            "lat", "latency.p99", detector="latency", model="m", model_version="v4", gateway="g3"
        ),
        T0,
    )
    p.ingest(
        alert(
            "lat3", "latency.p99", detector="latency", model="m", model_version="v3", gateway="g3"
        ),
        T0,
    )
    told = sorted(n.alerts[0].alert.fingerprint for n in notes(p, T0))
    assert told == ["gw", "lat3", "other", "reg"]
    assert {fp: i.rule for fp, i in p.inhibited.items()} == {
        "drop": "silent-gateway-holds-its-traffic-and-errors",
        "err": "silent-gateway-holds-its-traffic-and-errors",
        "lat": "version-regression-holds-its-latency",
    }


def test_notifications_are_capped_and_count_the_rest() -> None:
    from stream.alerting import pipeline as mod

    p = pipeline({"receiver": "r", "group_by": [], "group_wait": 0})
    for i in range(mod.MAX_ALERTS + 5):
        p.ingest(alert(f"f{i:05d}", "latency.p99", host=f"h{i}"), T0)
    (n,) = notes(p, T0)
    assert len(n.alerts) == mod.MAX_ALERTS and n.truncated_alerts == 5


def test_forget_hands_alerts_over_and_trim_bounds_the_stats() -> None:
    p = pipeline()
    p.ingest(alert("a", "latency.p99", host="h1"), T0)
    p.ingest(alert("b", "latency.p99", host="h2"), T0)
    notes(p, T0 + 30)
    p.forget(["a"])  # its partition went to another replica
    assert sorted(p.episodes) == ["b"] and len(p.groups) == 1
    p.ingest(alert("b", "latency.p99", "resolved", T0 + 60, host="h2"), T0 + 60)
    notes(p, T0 + 400)
    assert p.stats.notified == {"a-1", "b-1"}
    p.stats.trim({ep.alert.alert_id for ep in p.episodes.values()})
    assert p.stats.notified == set() and len(p.groups) == 0


def test_forget_drops_the_resolves_a_group_still_holds() -> None:
    p = pipeline()
    p.ingest(alert("a", "latency.p99", host="h1"), T0)
    p.ingest(alert("keep", "latency.p99", host="h1"), T0)
    notes(p, T0 + 30)
    p.ingest(alert("a", "latency.p99", "resolved", T0 + 40, host="h1"), T0 + 40)
    p.ingest(alert("b", "latency.p99", host="h1"), T0 + 50)
    p.ingest(alert("b", "latency.p99", "resolved", T0 + 60, host="h1"), T0 + 60)
    assert p.pending() == {"a", "b"}
    p.forget(iter(["a", "b"]))  # the new owner reads both resolves again and tells them
    assert p.pending() == set()
    assert notes(p, T0 + 330) == []  # nothing new for "keep"'s group to say


def _until(a: Alert, ends: float) -> Alert:
    return a.model_copy(update={"ends_at": datetime.fromtimestamp(ends, UTC)})


def test_a_firing_alert_resolves_at_its_own_ends_at_unless_sent_again() -> None:
    """Alertmanager's rule for an API client's alerts: endsAt passes, the alert ends."""
    p = pipeline()
    p.ingest(_until(alert("a", "DiskFull", host="h1"), T0 + 300), T0)
    p.ingest(_until(alert("b", "DiskFull", host="h2"), T0 + 300), T0)
    p.ingest(alert("w", "latency.p99", host="h1"), T0)  # the worker's: no ends_at
    assert [n.reason for n in notes(p, T0 + 30)] == ["initial", "initial", "initial"]
    # b is sent again (Prometheus re-evaluating its rule): its end moves on.
    p.ingest(_until(alert("b", "DiskFull", host="h2"), T0 + 900), T0 + 200)
    assert p.next_due() == T0 + 300 and p.expire(T0 + 299) == []
    (ended,) = p.expire(T0 + 300)
    assert ended.fingerprint == "a" and ended.status == "resolved"
    assert ended.annotations["resolved_reason"] == "expired"
    assert sorted(p.episodes) == ["b", "w"] and p.next_due() == T0 + 330
    (res,) = notes(p, T0 + 330)
    assert res.reason == "resolved" and fps(res) == [("a", "resolved")]
    assert [a.fingerprint for a in p.expire(T0 + 10_000)] == ["b"]  # w never expires
    assert sorted(p.episodes) == ["w"] and p.ends == {}


def test_the_dry_run_resolves_alerts_at_their_ends_at() -> None:
    from stream.alerting.dry_run import dispatch

    route = Route.model_validate({"receiver": "r", "group_by": ["..."], "group_wait": 0})
    run = dispatch([_until(alert("a", "DiskFull", host="h1"), T0 + 600)], route, [])
    assert [(n.reason, fps(n)) for n in run.notifications] == [
        ("initial", [("a", "firing")]),
        ("resolved", [("a", "resolved")]),
    ]


def test_a_restored_alert_gets_a_grace_before_it_expires() -> None:
    """Its client could not post it again while the notifier was down."""
    p = pipeline()
    lapsed = _until(alert("a", "DiskFull", host="h1"), T0 + 60)
    later = _until(alert("b", "DiskFull", host="h2"), T0 + 9000)
    p.restore([lapsed, later, alert("w", "latency.p99", host="h1")], T0 + 600, grace_s=300)
    assert p.ends == {"a": T0 + 900, "b": T0 + 9000}
    assert p.expire(T0 + 899) == [] and [a.fingerprint for a in p.expire(T0 + 900)] == ["a"]
