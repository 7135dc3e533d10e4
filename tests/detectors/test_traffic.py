"""Traffic detector: silence found by tick() with no events, and rate collapse."""

from __future__ import annotations

import numpy as np

from detectors.traffic import TrafficDetector
from tests.detectors.cases import inference_columns
from tests.detectors.cases.traffic import make_case


def test_gateway_silence_detected_by_tick() -> None:
    rng = np.random.default_rng(0)
    ts = 1.7e9 + np.sort(rng.uniform(0, 600, 1200))
    det = TrafficDetector(gateway_level=True)
    det.update(inference_columns(ts, gateway="gw-x"))
    assert not [f for f in det.tick(float(ts.max()) + 5) if f.anomalous]
    found = det.tick(float(ts.max()) + 120)
    gw = [f for f in found if f.kind == "traffic.gateway_silent" and f.anomalous]
    assert gw and gw[0].scope == {"gateway": "gw-x"}
    # the gateway finding covers its series: no duplicate series-level silence
    assert not [f for f in found if f.kind == "traffic.series_silent"]
    again = det.update(inference_columns(np.array([float(ts.max()) + 130]), gateway="gw-x"))
    assert any(f.kind == "traffic.gateway_silent" and not f.anomalous for f in again.findings)


def test_by_default_a_silent_gateway_shows_as_its_series_only() -> None:
    # One worker engine may see only some of a gateway's models (events are keyed by
    # model), so the default must not raise gateway-wide alerts from a partial view.
    rng = np.random.default_rng(0)
    ts = 1.7e9 + np.sort(rng.uniform(0, 600, 1200))
    det = TrafficDetector()
    det.update(inference_columns(ts, gateway="gw-x"))
    found = [f for f in det.tick(float(ts.max()) + 120) if f.anomalous]
    assert found and {f.kind for f in found} == {"traffic.series_silent"}
    assert all(f.series["gateway"] == "gw-x" for f in found)


def test_rate_drop_fires_and_clean_stays_quiet() -> None:
    batches, _ = make_case(4)
    det = TrafficDetector()
    outs = [det.update(b) for b in batches]
    drops = [f for o in outs for f in o.findings if f.anomalous and f.kind == "traffic.rate_drop"]
    assert any(f.series["model"] == "mistral-7b" for f in drops)
    before = [o for b, o in zip(batches, outs, strict=True) if b.ts.max() < 1.7e9 + 1300]
    assert len(before) > 10
    assert not [f for o in before for f in o.findings if f.anomalous]
