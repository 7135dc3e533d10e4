"""Grouping, inhibition, silences and acknowledgements on top of the state machine."""

from __future__ import annotations

import pytest
from lifecycle_helpers import T0, finding, lifecycle

from stream.matchers import Matcher

GROUPING = {
    "group_by": ["alertname"],
    "group_wait_s": 30.0,
    "group_interval_s": 300.0,
    "repeat_interval_s": 3600.0,
}


def gpu(host: str = "h1", score: float = 0.9) -> object:
    return finding(
        score,
        detector="gpu_health",
        kind="gpu.xid",
        series={"gpu_uuid": f"GPU-{host}"},
        scope={"host": host},
    )


# -- matchers -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('host="h1"', {"host": "h1"}, True),
        ('host="h1"', {"host": "h2"}, False),
        ("host!=h1", {"host": "h2"}, True),
        ('host!="h1"', {}, True),
        ('detector=~"latency|slo.*"', {"detector": "slo_burn"}, True),
        ('detector=~"latency"', {"detector": "latency_p99"}, False),  # anchored
        ('detector!~"gpu.*"', {"detector": "gpu_health"}, False),
    ],
)
def test_matcher_operators(text: str, labels: dict[str, str], expected: bool) -> None:
    m = Matcher.model_validate(text)
    assert m.matches(labels) is expected
    assert Matcher.model_validate(str(m)) == m


def test_bad_matcher_is_rejected() -> None:
    with pytest.raises(ValueError, match="not a label matcher"):
        Matcher.model_validate("no operator here")
    with pytest.raises(ValueError, match="bad regular expression"):
        Matcher.model_validate('a=~"("')


# -- grouping -------------------------------------------------------------------------
def test_group_wait_then_initial_batch_with_all_group_members() -> None:
    lc = lifecycle(grouping=GROUPING)
    lc.observe([finding(series={"model": "m1"})], T0)
    lc.observe([finding(series={"model": "m2"})], T0 + 10)
    assert lc.notifications(T0 + 29) == []
    (note,) = lc.notifications(T0 + 30)
    assert note.reason == "initial" and note.group_labels == {"alertname": "latency.ttft_p99"}
    assert sorted(a.labels["model"] for a in note.firing) == ["m1", "m2"]
    assert lc.notifications(T0 + 31) == []


def test_update_after_group_interval_and_resolved_included_once() -> None:
    lc = lifecycle(grouping=GROUPING)
    lc.observe([finding(series={"model": "m1"})], T0)
    lc.notifications(T0 + 30)
    lc.observe([finding(series={"model": "m2"})], T0 + 40)
    lc.observe([finding(0.0, anomalous=False, series={"model": "m1"})], T0 + 50)
    assert lc.notifications(T0 + 100) == []  # group_interval not yet elapsed
    (note,) = lc.notifications(T0 + 330)
    assert note.reason == "update"
    assert [a.labels["model"] for a in note.firing] == ["m2"]
    assert [a.labels["model"] for a in note.resolved] == ["m1"]
    assert lc.notifications(T0 + 630) == []  # nothing changed, repeat not due


def test_repeat_interval_resends_unchanged_firing_group() -> None:
    lc = lifecycle(grouping=GROUPING, resolve_timeout_s=1e9)
    lc.observe([finding()], T0)
    assert [n.reason for n in lc.notifications(T0 + 30)] == ["initial"]
    reasons = []
    for k in range(1, 14):
        reasons += [n.reason for n in lc.notifications(T0 + 30 + 300 * k)]
    assert reasons == ["repeat"]  # at T0 + 30 + 3600, the first check past the interval


def test_group_by_all_labels_gives_one_group_per_alert() -> None:
    lc = lifecycle(grouping={**GROUPING, "group_by": ["..."]})
    lc.observe([finding(series={"model": "m1"}), finding(series={"model": "m2"})], T0)
    notes = lc.notifications(T0 + 30)
    assert len(notes) == 2 and all(len(n.alerts) == 1 for n in notes)


def test_resolved_before_first_notification_is_never_sent() -> None:
    lc = lifecycle(grouping=GROUPING)
    lc.observe([finding()], T0)
    lc.observe([finding(0.0, anomalous=False)], T0 + 5)
    assert lc.notifications(T0 + 30) == [] and lc.notifications(T0 + 400) == []


# -- inhibition -----------------------------------------------------------------------
def test_gpu_alert_inhibits_latency_on_same_host_only() -> None:
    lc = lifecycle(grouping=GROUPING)
    events = lc.observe(
        [
            gpu("h1"),
            finding(series={"model": "m1", "host": "h1"}),
            finding(series={"model": "m1", "host": "h2"}),
        ],
        T0,
    )
    by_host = {(e.detector, e.labels["host"]): e for e in events}
    cause = by_host[("gpu_health", "h1")]
    muted = by_host[("latency", "h1")]
    free = by_host[("latency", "h2")]
    assert muted.annotations["inhibited_by"] == cause.fingerprint
    assert muted.annotations["inhibited_cause"] == 'gpu.xid (host="h1")'
    assert cause.annotations["inhibits"] == muted.fingerprint
    assert "inhibited_by" not in free.annotations
    notes = lc.notifications(T0 + 30)
    shown = {a.fingerprint for n in notes for a in n.alerts}
    assert shown == {cause.fingerprint, free.fingerprint}


def test_inhibition_needs_the_equal_label_on_both_sides() -> None:
    lc = lifecycle()
    events = lc.observe([gpu("h1"), finding(series={"model": "m1"})], T0)
    assert all("inhibited_by" not in e.annotations for e in events)


def test_inhibition_lifts_when_the_cause_resolves() -> None:
    lc = lifecycle(grouping=GROUPING)
    lc.observe([gpu("h1"), finding()], T0)
    lc.observe([gpu("h1", 0.0)], T0 + 10)  # recovery of the GPU
    (latency,) = lc.active_alerts()
    assert "inhibited_by" not in latency.annotations
    notes = lc.notifications(T0 + 30)
    assert [a.detector for n in notes for a in n.alerts] == ["latency"]


# -- silences -------------------------------------------------------------------------
def test_silenced_alert_is_published_annotated_but_never_notified() -> None:
    lc = lifecycle(grouping=GROUPING)
    sil = lc.add_silence(['model="m1"', "host=~h.*"], T0, T0 + 3600, "alice", "deploy")
    (firing,) = lc.observe([finding()], T0 + 1)
    assert firing.annotations["silenced"] == sil.id
    assert lc.notifications(T0 + 60) == []
    (resolved,) = lc.observe([finding(0.0, anomalous=False)], T0 + 100)
    assert resolved.annotations["silenced"] == sil.id
    assert lc.notifications(T0 + 400) == []


def test_expired_silence_lets_notifications_through() -> None:
    lc = lifecycle(grouping=GROUPING, resolve_timeout_s=1e9)
    sil = lc.add_silence(['alertname="latency.ttft_p99"'], T0, T0 + 3600, "bob")
    lc.observe([finding()], T0)
    assert lc.notifications(T0 + 30) == []
    lc.expire_silence(sil.id, T0 + 100)
    assert lc.silences()[0].ends_at == T0 + 100
    notes = lc.notifications(T0 + 330)
    assert [n.reason for n in notes] == ["initial"]
    assert "silenced" not in notes[0].alerts[0].annotations


def test_silence_not_yet_started_does_not_mute() -> None:
    lc = lifecycle()
    lc.add_silence(['host="h1"'], T0 + 100, T0 + 200, "carol")
    (alert,) = lc.observe([finding()], T0)
    assert "silenced" not in alert.annotations


def test_silence_validation() -> None:
    lc = lifecycle()
    with pytest.raises(ValueError, match="matcher"):
        lc.add_silence([], T0, T0 + 1, "x")
    with pytest.raises(ValueError, match="before it starts"):
        lc.add_silence(['a="b"'], T0, T0, "x")
    with pytest.raises(ValueError, match="author"):
        lc.add_silence(['a="b"'], T0, T0 + 1, "")
    with pytest.raises(KeyError):
        lc.expire_silence("sil-nope", T0)


# -- acknowledgements -----------------------------------------------------------------
def test_ack_annotates_and_stops_repeats_until_it_expires() -> None:
    lc = lifecycle(grouping=GROUPING, resolve_timeout_s=1e9)
    (alert,) = lc.observe([finding()], T0)
    lc.notifications(T0 + 30)
    ack = lc.acknowledge(alert.fingerprint, "dave", T0 + 40, "looking", ttl_s=7200.0)
    assert ack.expires_at == T0 + 7240
    assert lc.active_alerts()[0].annotations["acked_by"] == "dave"
    reasons = [n.reason for k in range(1, 30) for n in lc.notifications(T0 + 30 + 300 * k)]
    # Acked until T0 + 7240: the first repeat comes at the first check after that.
    assert reasons == ["repeat"]
    assert "acked_by" not in lc.active_alerts(T0 + 7300)[0].annotations


def test_ack_ends_with_the_firing_instance() -> None:
    lc = lifecycle()
    (alert,) = lc.observe([finding()], T0)
    lc.acknowledge(alert.fingerprint, "erin", T0)
    lc.observe([finding(0.0, anomalous=False)], T0 + 10)
    (again,) = lc.observe([finding()], T0 + 20)
    assert "acked_by" not in again.annotations
    with pytest.raises(KeyError):
        lc.acknowledge("0" * 16, "erin", T0 + 30)


def test_alert_inhibited_before_it_resolves_sends_no_resolve_notification() -> None:
    lc = lifecycle(grouping=GROUPING)
    (latency,) = lc.observe([finding()], T0)
    assert [n.reason for n in lc.notifications(T0 + 30)] == ["initial"]
    lc.observe([gpu("h1")], T0 + 40)
    (resolved,) = lc.observe([finding(0.0, anomalous=False)], T0 + 50)
    assert resolved.annotations["inhibited_by"]  # the topic still records it
    notes = lc.notifications(T0 + 330)
    assert latency.fingerprint not in {a.fingerprint for n in notes for a in n.alerts}
    assert [a.detector for n in notes for a in n.alerts] == ["gpu_health"]
