"""The generic metric-series detector: spikes and level shifts, quiet on noise."""

from __future__ import annotations

import numpy as np

from detectors.series import SeriesDetector
from schemas.columns import MetricColumns, series_key


def _cols(t: np.ndarray, v: np.ndarray, name: str = "m") -> MetricColumns:
    n = t.size
    obj = np.empty(n, dtype=object)
    obj[:] = name
    key = np.empty(n, dtype=object)
    key[:] = series_key(name, {"i": "a"})
    labels = np.empty(n, dtype=object)
    labels[:] = [{"i": "a"}] * n
    return MetricColumns(ts=t, name=obj, series=key, labels=labels, value=v)


def test_quiet_on_noise_then_fires_on_level_shift_and_recovers() -> None:
    rng = np.random.default_rng(3)
    det = SeriesDetector()
    t = 1.7e9 + 60.0 * np.arange(3000)
    v = rng.normal(100.0, 5.0, t.size)
    v[2000:2120] += 20.0  # a 4-sigma shift for two hours, inside max_freeze_s
    out = [det.update(_cols(t[i : i + 20], v[i : i + 20])) for i in range(0, t.size, 20)]
    scores = np.concatenate([o.scores for o in out])
    assert (scores[200:2000] >= 0.5).mean() < 0.005
    assert (scores[2020:2120] >= 0.5).mean() > 0.8
    assert (scores[2160:] >= 0.5).mean() < 0.01
    findings = [f for o in out for f in o.findings]
    first = next(f for f in findings if f.anomalous)
    assert 1.7e9 + 60.0 * 2000 <= first.ts < 1.7e9 + 60.0 * 2020  # first batch of the shift
    assert first.series["series"] == "m{i=a}" and first.series["i"] == "a"
    assert first.expected is not None and abs(first.expected - 100.0) < 5.0
    assert any(not f.anomalous and f.ts > first.ts for f in findings)


def test_single_spike_scores_high_and_does_not_poison_the_baseline() -> None:
    rng = np.random.default_rng(5)
    det = SeriesDetector()
    t = 1.7e9 + 15.0 * np.arange(1000)
    v = rng.normal(10.0, 1.0, t.size)
    v[600] = 60.0
    out = det.update(_cols(t, v))
    assert out.scores[600] > 0.9
    assert abs(float(det.st[0, 0]) - 10.0) < 0.5
