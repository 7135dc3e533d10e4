"""Offsets the notifier may commit (Settler) and a new group's history fold (CatchUp)."""

from __future__ import annotations

from stream.notify.intake import CatchUp, Settler
from tests.connectors.notify_fakes import make_alert, resolved


def test_an_event_is_settled_once_every_group_holding_it_flushed() -> None:
    done: list[tuple[int, int]] = []
    settler = Settler(done.append)
    settler.hold((0, 1), 0)  # no group took it: settled at once
    settler.hold((0, 2), 2)  # two routes, two groups
    assert done == [(0, 1)]
    settler.release((0, 2))
    assert done == [(0, 1)] and len(settler) == 1
    settler.release((0, 2))
    assert done == [(0, 1), (0, 2)] and len(settler) == 0
    settler.hold((1, 5), 1)
    settler.forget_partition(1)  # revoked: not ours to commit any more
    assert len(settler) == 0
    settler.release((1, 5))  # its group flushes later: still not ours
    assert done == [(0, 1), (0, 2)]


def test_history_folds_to_the_alerts_still_open() -> None:
    fold = CatchUp()
    fold.start(0, 5)  # partition 0 holds offsets 0..4
    fold.start(1, 0)  # an empty partition has no history
    assert fold.active(0, 4) and not fold.active(0, 5) and not fold.active(1, 0)
    a, b, c = (make_alert(alert_id=f"a{i}", fingerprint=f"f{i}") for i in range(3))
    settled = []
    settled += fold.take(a, (0, 0))
    settled += fold.take(b, (0, 1))
    settled += fold.take(resolved(a), (0, 2))  # a ended before we started: never sent
    assert fold.finished() == []  # not at the end yet
    settled += fold.take(c, (0, 3))
    fold.passed(0, 4)  # the last event did not decode; it still counts as read
    assert sorted(settled) == [(0, 0), (0, 2)] and fold.skipped == 2
    out = fold.finished()
    assert [(alert.fingerprint, token) for alert, token in out] == [("f1", (0, 1)), ("f2", (0, 3))]
    assert fold.finished() == [] and len(fold) == 0
