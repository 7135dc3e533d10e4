"""Traffic's next deadline: the moment its tick first reports something new."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.traffic import TrafficDetector
from tests.detectors.cases import inference_columns


@pytest.mark.parametrize("gateway_level", [False, True])
def test_deadline_is_the_moment_tick_first_sees_silence(gateway_level: bool) -> None:
    rng = np.random.default_rng(3)
    ts = 1.7e9 + np.sort(rng.uniform(0, 600, 1200))
    det = TrafficDetector(gateway_level=gateway_level, bin_s=3600.0)
    det.update(inference_columns(ts, gateway="gw-x"))
    due = det.next_deadline(float(ts.max()))
    assert ts.max() < due < ts.max() + 120
    probe = TrafficDetector.restore(det.snapshot())  # the same state, ticked a hair early
    assert not [f for f in probe.tick(float(np.nextafter(due, -np.inf))) if f.anomalous]
    silent = [f for f in det.tick(due) if f.anomalous]
    assert silent and all(f.ts == due for f in silent)
    # Reported now, so not due again; the next deadline is the hour's bin closing.
    nxt = det.next_deadline(due)
    assert nxt > due and nxt % 3600.0 == 0.0


def test_bin_boundaries_are_deadlines() -> None:
    ts = 1.7e9 + np.arange(0.0, 100.0, 0.5)
    det = TrafficDetector(bin_s=60.0)
    det.update(inference_columns(ts, gateway="gw-x"))
    first_bin = (np.floor(ts.max() / 60.0) + 1) * 60.0
    assert det.next_deadline(float(ts.max())) == first_bin
    det.tick(first_bin)
    # Next: the silence (min_silence_s, 20 s, binds over 15 x a 0.5 s gap), then the bin.
    onset = det.next_deadline(first_bin)
    assert onset == pytest.approx(ts.max() + 20.0)
    assert [f for f in det.tick(onset) if f.anomalous]
    assert det.next_deadline(onset) == first_bin + 60.0
