"""A replayed series sampled every 10 minutes or hourly pages on a level shift: the series
detector hands the lifecycle its sampling interval, so the alert's pending stage waits
for the next sample instead of timing out in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream.replay.readers import CsvSource
from stream.replay.runner import Replayer
from stream.replay.scoring import firing_alerts

T0 = 1_717_401_600


@pytest.mark.parametrize("step_s", [600, 3600])
def test_a_shift_on_a_sparse_series_fires_one_alert_where_it_starts(
    tmp_path: Path, step_s: int
) -> None:
    n, at = 1500, 1200
    v = np.random.default_rng(1).normal(50.0, 1.0, n)
    v[at : at + 30] += 40.0
    src = tmp_path / "sparse.csv"
    src.write_text(
        "timestamp,value\n" + "".join(f"{T0 + step_s * i},{x:.3f}\n" for i, x in enumerate(v))
    )
    alerts = firing_alerts(Replayer(None).run([CsvSource(src)]).alerts)
    at_shift = [a for a in alerts if a.starts_at.timestamp() == T0 + step_s * at]
    assert len(at_shift) == 1
    assert at_shift[0].observed is not None and at_shift[0].observed > 80.0
    assert "above its expected range" in at_shift[0].explanation
