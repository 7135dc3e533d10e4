"""A replayed series sampled every 10 minutes or hourly pages on a level shift: the series
detector hands the lifecycle its sampling interval, so the alert's pending stage waits
for the next sample instead of timing out in seconds. A gauge that blips once resolves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from schemas.models import AlertStatus
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


def test_a_gauge_that_blips_once_resolves_and_pages_its_next_blip(tmp_path: Path) -> None:
    # GPUs in a node: 8 every 5 minutes, one sample at 7, another a day later. The first
    # alert stayed firing to the end of the replay, and the second blip fell inside it.
    n, first, second = 3000, 2000, 2288
    v = np.full(n, 8)
    v[[first, second]] = 7
    src = tmp_path / "gpus.csv"
    src.write_text("timestamp,value\n" + "".join(f"{T0 + 300 * i},{x}\n" for i, x in enumerate(v)))
    alerts = Replayer(None).run([CsvSource(src)]).alerts
    fired = firing_alerts(alerts)
    assert [a.starts_at.timestamp() for a in fired] == [T0 + 300 * first, T0 + 300 * second]
    resolved = {a.alert_id: a for a in alerts if a.status is AlertStatus.RESOLVED}
    assert sorted(resolved) == sorted(a.alert_id for a in fired)
    for a in fired:  # within three windows (30 samples) of its blip
        ends = resolved[a.alert_id].ends_at
        assert ends is not None and ends.timestamp() - a.starts_at.timestamp() <= 30 * 300
