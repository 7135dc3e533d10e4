"""Alert states written before due-time timers restore with every timer defined."""

from __future__ import annotations

import math

from stream.alert_state import AlertState

_OLD_CLEARED = {  # a firing alert whose condition had cleared, as 28a451b wrote it
    "fingerprint": "fp",
    "labels": {"alertname": "x"},
    "detector": "traffic",
    "kind": "traffic.series_silent",
    "state": "firing",
    "active_since": 100.0,
    "last_seen": 160.0,
    "last_active": 150.0,
    "condition": "clear",
    "score": 0.9,
}


def test_old_cleared_state_counts_keep_firing_for_from_its_last_active_finding() -> None:
    st = AlertState.from_dict(_OLD_CLEARED)
    assert st.cleared_at == 150.0
    assert math.isfinite(st.cleared_at + st.span(60.0, 1))


def test_new_state_keeps_its_own_cleared_time() -> None:
    st = AlertState.from_dict({**_OLD_CLEARED, "cleared_at": 155.0})
    assert st.cleared_at == 155.0


def test_state_not_cleared_keeps_unknown_cleared_time() -> None:
    st = AlertState.from_dict({**_OLD_CLEARED, "condition": "hot"})
    assert math.isnan(st.cleared_at)
