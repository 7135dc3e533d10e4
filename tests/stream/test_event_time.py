"""Event-driven time gives the alerts a tick every second gives, timestamps included.

The reference replay ticks the engine every second of event time through gaps and
after every slice (``tick_s=1``), as a live worker's timer does; the default replay
only visits deadlines. Both run the same files; every alert event must be the same.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detectors.base import Detector, DetectorOutput, Finding
from detectors.config import build_detectors
from schemas.columns import MetricColumns
from schemas.models import MetricSample
from stream.config import LlmwatchConfig, parse_config
from stream.engine import Engine
from stream.replay.readers import open_source
from stream.replay.runner import Replayer, ReplayResult
from stream.simulate import FleetSpec, default_incidents, write

T0 = 1_717_401_600


class RowThreshold(Detector[MetricColumns]):
    """Per row: anomalous above ``threshold``, one recovery after; each finding at its
    row's time, so batching cannot change what it reports (``row_findings``)."""

    name = None  # type: ignore[assignment]  # kept out of detector discovery
    consumes = MetricColumns
    row_findings = True

    def __init__(self, threshold: float = 30.0) -> None:
        super().__init__()
        self.name = "rows"  # type: ignore[misc]
        self.threshold = threshold
        self.firing: set[str] = set()
        self.calls = 0

    def update(self, batch: MetricColumns) -> DetectorOutput:
        self.calls += 1
        v = np.asarray(batch.value, dtype=np.float64)
        findings = []
        for i in range(len(batch)):
            key, hot = str(batch.series[i]), bool(v[i] > self.threshold)
            if not hot and key not in self.firing:
                continue
            (self.firing.add if hot else self.firing.discard)(key)
            findings.append(
                Finding("rows", "rows.high", {"series": key}, float(batch.ts[i]),
                        float(v[i] / (v[i] + self.threshold)), hot, observed=float(v[i]))
            )  # fmt: skip
        return DetectorOutput(v / (v + self.threshold), findings)


def _run(path: Path, config: LlmwatchConfig | None, tick_s: float | None) -> ReplayResult:
    """Every configured detector, plus a plain threshold on metric rows so the sparse
    series alerts whatever the generic series detector makes of it."""
    cfg = config if config is not None else LlmwatchConfig()
    detectors = [*build_detectors(cfg.detectors), RowThreshold(threshold=38.0)]
    return Replayer(engine=Engine(cfg, detectors=detectors), tick_s=tick_s).run([open_source(path)])


def _events(result: ReplayResult) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for a in result.alerts]


def _sparse_csv(path: Path) -> Path:
    """A 5-minute series: noise, a lone spike, a held level shift, a six-hour gap."""
    rng = np.random.default_rng(7)
    lines = ["timestamp,value"]
    t = T0
    for i in range(160):
        v = 20.0 + rng.normal(0.0, 1.0)
        if i == 60:
            v += 40.0
        if 100 <= i < 112 or 125 <= i < 140:  # the second spans the gap
            v += 25.0
        lines.append(f"{t},{v:.4f}")
        t += 300 if i != 130 else 6 * 3600
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sparse_series_same_alerts_as_ticking_every_second(tmp_path: Path) -> None:
    csv_path = _sparse_csv(tmp_path / "sparse.csv")
    # Timers that matter on this series: keep_firing_for longer than a sample, a short
    # resolve timeout (the six-hour gap hits it), flap history.
    cfg = parse_config(
        {
            "lifecycle": {
                "defaults": {"for_s": 60.0, "keep_firing_for_s": 400.0},
                "resolve_timeout_s": 900.0,
            }
        }
    )
    driven = _run(csv_path, cfg, None)
    ticked = _run(csv_path, cfg, 1.0)
    assert _events(driven) == _events(ticked)
    statuses = [a.status.value for a in driven.alerts]
    assert "firing" in statuses and "resolved" in statuses
    assert any(a.annotations.get("resolved_reason") == "timeout" for a in driven.alerts)


def _fleet(tmp_path: Path) -> Path:
    spec = FleetSpec(seed=404, duration_s=900.0, rate=40.0, hosts=3, gpus_per_host=2)
    # One incident of every kind, a gateway going silent among them: found only by
    # ticks (absence), so its timing is what event-driven time must get right.
    files = write(spec, default_incidents(spec, 404), tmp_path / "fleet")
    assert files.events is not None
    return files.events


def test_simulated_fleet_same_alerts_as_ticking_every_second(tmp_path: Path) -> None:
    events = _fleet(tmp_path)
    driven = _run(events, None, None)
    ticked = _run(events, None, 1.0)
    assert _events(driven) == _events(ticked)
    detectors = {a.detector for a in driven.alerts}
    assert "traffic" in detectors and len(detectors) >= 3


def test_advance_across_an_hour_visits_each_deadline_at_its_time() -> None:
    """One advance over a long gap = a tick every second over it (the live worker's
    idle tick takes long steps when a partition is quiet)."""
    cfg = parse_config({"lifecycle": {"defaults": {"for_s": 30.0, "for_samples": 1}}})

    def batch(t: float, v: float) -> MetricColumns:
        sample = MetricSample(ts=datetime.fromtimestamp(t, UTC), name="q", value=v)
        return MetricColumns.from_rows([sample])

    def feed(eng: Engine) -> None:
        for i in range(40):
            eng.process(batch(T0 + i, 10.0 + (i % 3)))
        eng.process(batch(T0 + 40, 500.0))

    one = Engine(cfg, detectors=[RowThreshold(threshold=100.0)])
    many = Engine(cfg, detectors=[RowThreshold(threshold=100.0)])
    feed(one)
    feed(many)
    jumped = one.advance(T0 + 3600)
    stepped = [a for t in range(41, 3601) for a in many.advance(T0 + t)]
    assert [a.model_dump() for a in jumped] == [a.model_dump() for a in stepped]
    assert [a.status.value for a in jumped] == ["firing", "resolved"]


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_tick_s_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="tick_s"):
        Replayer(tick_s=bad)


def test_row_findings_detector_gets_whole_file_batches_with_the_same_alerts(
    tmp_path: Path,
) -> None:
    csv_path = _sparse_csv(tmp_path / "sparse.csv")
    cfg = parse_config({"lifecycle": {"defaults": {"keep_firing_for_s": 400.0}}})
    runs = {}
    for tick_s in (None, 60.0):
        det = RowThreshold()
        replayer = Replayer(engine=Engine(cfg, detectors=[det]), tick_s=tick_s)
        runs[tick_s] = (_events(replayer.run([open_source(csv_path)])), det.calls)
    (batched, calls), (reference, per_row_calls) = runs[None], runs[60.0]
    assert batched == reference
    assert calls == 1 and per_row_calls == 160
    assert [a["status"] for a in batched].count("firing") >= 2


def test_series_detector_reports_per_row_so_a_file_is_one_batch(tmp_path: Path) -> None:
    """The shipped series detector (row_findings): a week of 5-minute points replayed as
    one batch gives the alerts and row scores of replaying it a point at a time."""
    rng = np.random.default_rng(11)
    t = np.arange(2016) * 300 + T0
    v = 50 + 10 * np.sin(2 * np.pi * t / 86400) + rng.normal(0, 1, t.size)
    v[900:960] += 30.0  # a five-hour shift
    v[1500] += 60.0  # one spike
    path = tmp_path / "week.csv"
    path.write_text(
        "timestamp,value\n" + "".join(f"{a},{b:.4f}\n" for a, b in zip(t, v, strict=True))
    )
    whole = Replayer().run([open_source(path)])
    points = Replayer(tick_s=60.0).run([open_source(path)])
    assert len(whole.timeline.ts) == 1 and len(points.timeline.ts) == t.size
    assert _events(whole) == _events(points)
    np.testing.assert_array_equal(whole.tables[0].scores, points.tables[0].scores)
    assert any(f.detector == "series" and f.anomalous for f in whole.findings)
