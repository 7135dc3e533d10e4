"""Snapshots written before the per-series state helper (git 28a451b) still restore.

Each fixture ``snapshots/<name>_before_state_helper.snapshot`` was written by that
release's detector after the first half of its contract case. Restored here, it must
give the very outputs on the second half that a detector fed the whole case gives:
nothing learned is lost or altered by the migration to the new state layout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.detectors.test_contract import CLASSES, assert_same, case, run

SNAPSHOTS = Path(__file__).parent / "snapshots"
# series is not here: its state is its own (detectors/series.py, with its own versions).
# feedback's fixture is checked in test_feedback_join.py: its state version 3 joins
# requests to ratings, so what it learned from ratings carries over and the request
# baselines start fresh (the outputs that follow cannot be the whole run's).
OWN_CHECK = {"feedback"}
NAMES = sorted(
    name
    for p in SNAPSHOTS.glob("*_before_state_helper.snapshot")
    if (name := p.name.split("_before_state_helper")[0]) not in OWN_CHECK
)


def test_every_migrated_detector_has_a_fixture() -> None:
    assert set(NAMES) == set(CLASSES) - {"series"} - OWN_CHECK


@pytest.mark.parametrize("name", NAMES)
def test_snapshot_from_before_the_state_helper_restores(name: str) -> None:
    batches, _ = case(name)
    cls = CLASSES[name]
    mid = len(batches) // 2
    data = (SNAPSHOTS / f"{name}_before_state_helper.snapshot").read_bytes()
    restored = cls.restore(data)
    whole = cls(**restored.params())  # a snapshot keeps the params it was taken with
    run(whole, batches[:mid])
    assert restored.active_series() == whole.active_series() > 0
    assert_same(run(restored, batches[mid:]), run(whole, batches[mid:]))
