"""Property tests: lifecycle invariants under random operation sequences."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from lifecycle_helpers import T0, finding, lifecycle

from schemas.models import Alert
from stream.grouping import Notification
from stream.lifecycle import Lifecycle
from stream.matchers import Matcher

SERIES = [
    {"model": "m1", "host": "h1"},
    {"model": "m2", "host": "h1"},
    {"model": "m1", "host": "h2"},
]
CONFIG: dict[str, Any] = {
    "defaults": {"for_s": 10.0, "keep_firing_for_s": 5.0},
    "resolve_timeout_s": 60.0,
    "flap_window_s": 120.0,
    "flap_threshold": 2,
    "grouping": {
        "group_by": ["host"],
        "group_wait_s": 5.0,
        "group_interval_s": 20.0,
        "repeat_interval_s": 40.0,
    },
}

obs_op = st.tuples(
    st.just("obs"),
    st.lists(
        st.tuples(
            st.integers(0, len(SERIES) - 1),
            st.sampled_from([0.0, 0.2, 0.4, 0.6, 0.95]),
            st.sampled_from([True, True, True, False]),  # anomalous (False: a recovery)
            st.sampled_from([False, False, False, True]),  # from gpu_health
        ),
        max_size=4,
    ),
    st.floats(0, 15),
)
op = st.one_of(
    obs_op,
    obs_op,
    obs_op,
    st.tuples(st.just("adv"), st.floats(0, 80)),
    st.tuples(st.just("adv"), st.floats(0, 20)),
    st.tuples(
        st.just("sil"),
        st.sampled_from(['host="h1"', 'model="m2"', "model=~m.*"]),
        st.floats(0, 50),
        st.floats(1, 60),
    ),
    st.tuples(st.just("ack"), st.integers(0, 5)),
)


def apply(
    lc: Lifecycle, o: tuple[Any, ...], t: float
) -> tuple[float, list[Alert], list[Notification]]:
    """Run one operation at clock ``t``; returns the new clock, events, notifications."""
    events: list[Alert] = []
    if o[0] == "obs":
        t += o[2]
        fs = [
            finding(
                score,
                anomalous=anom,
                detector="gpu_health" if gpu else "latency",
                kind="gpu.xid" if gpu else "latency.ttft_p99",
                series=SERIES[i],
            )
            for i, score, anom, gpu in o[1]
        ]
        events = lc.observe(fs, t)
    elif o[0] == "adv":
        t += o[1]
        events = lc.advance(t)
    elif o[0] == "sil":
        lc.add_silence([o[1]], t + o[2] - 20, t + o[2] + o[3], "prop")
    elif o[0] == "ack":
        active = lc.active_alerts()
        if active:
            lc.acknowledge(active[o[1] % len(active)].fingerprint, "prop", t, ttl_s=30.0)
    return t, events, lc.notifications(t)


class LifecycleMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.lc = lifecycle(**CONFIG)
        self.t = T0
        self.firing: set[str] = set()
        self.labels: dict[str, dict[str, str]] = {}
        self.ids: set[str] = set()
        self.silences: list[tuple[Matcher, float, float]] = []

    def _run(self, o: tuple[Any, ...]) -> None:
        if o[0] == "sil":
            self.silences.append(
                (Matcher.model_validate(o[1]), self.t + o[2] - 20, self.t + o[2] + o[3])
            )
        self.t, events, notes = apply(self.lc, o, self.t)
        for e in events:
            if e.status == "firing":
                assert e.fingerprint not in self.firing, "fired twice without a resolve"
                assert e.alert_id not in self.ids, "alert_id reused"
                self.firing.add(e.fingerprint)
                self.labels[e.fingerprint] = e.labels
                self.ids.add(e.alert_id)
            else:
                assert e.fingerprint in self.firing, "resolved without firing"
                self.firing.discard(e.fingerprint)
                assert e.ends_at is not None and e.ends_at >= e.starts_at
        for n in notes:
            for a in n.alerts:
                assert "silenced" not in a.annotations
                assert "inhibited_by" not in a.annotations
                if a.status == "firing":
                    muted = any(
                        m.matches(a.labels) and s <= self.t < e for m, s, e in self.silences
                    )
                    assert not muted, f"silenced alert {a.fingerprint} notified"
                    gpu_hosts = {
                        self.labels[fp]["host"]
                        for fp in self.firing
                        if self.labels[fp]["detector"] == "gpu_health"
                    }
                    if a.detector == "latency":
                        assert a.labels["host"] not in gpu_hosts, "inhibited alert notified"

    @rule(o=op)
    def step(self, o: tuple[Any, ...]) -> None:
        self._run(o)

    @rule()
    def snapshot_and_restore(self) -> None:
        self.lc = Lifecycle.restore(self.lc.snapshot(), self.lc.config)

    @invariant()
    def active_matches_events(self) -> None:
        assert {a.fingerprint for a in self.lc.active_alerts()} == self.firing


LifecycleMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)
TestLifecycleMachine = LifecycleMachine.TestCase


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(op, min_size=10, max_size=30), split=st.integers(0, 30))
def test_snapshot_restore_mid_sequence_changes_nothing(
    ops: list[tuple[Any, ...]], split: int
) -> None:
    a = lifecycle(**CONFIG)
    t = T0
    for o in ops[:split]:
        t, _, _ = apply(a, o, t)
    b = Lifecycle.restore(a.snapshot(), a.config)
    ta = tb = t
    for o in ops[split:]:
        ta, ea, na = apply(a, o, ta)
        tb, eb, nb = apply(b, o, tb)
        assert [e.model_dump() for e in ea] == [e.model_dump() for e in eb]
        assert [(n.group_key, n.reason, [x.model_dump() for x in n.alerts]) for n in na] == [
            (n.group_key, n.reason, [x.model_dump() for x in n.alerts]) for n in nb
        ]
    assert a.snapshot() == b.snapshot()
