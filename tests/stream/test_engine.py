"""The engine: routing batches to detectors, max scores, watermark, ticks, snapshots."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from detectors.base import Detector, DetectorConfig, DetectorOutput, Finding
from detectors.config import detector_classes
from schemas.columns import COLUMNS_BY_KIND, GpuColumns, MetricColumns
from schemas.models import GpuSample, MetricSample
from stream.config import LlmwatchConfig, parse_config
from stream.engine import Engine

T0 = 1_700_000_000.0


class FakeConfig(DetectorConfig):
    label: str = "fake"
    threshold: float = 10.0
    absent_after_s: float = 0.0  # 0: no absence findings


class FakeMetric(Detector[MetricColumns]):
    """Scores value / (value + threshold); finds every series over threshold.

    ``name`` is None on the class so detector discovery never registers it; each
    instance names itself from its config.
    """

    name = None  # type: ignore[assignment]
    consumes = MetricColumns
    Config = FakeConfig

    def __init__(self, config: DetectorConfig | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        assert isinstance(self.config, FakeConfig)
        self.name = self.config.label  # type: ignore[misc]
        self.rows_seen = 0
        self.last_ts: dict[str, float] = {}

    def update(self, batch: MetricColumns) -> DetectorOutput:
        cfg = self.config
        assert isinstance(cfg, FakeConfig)
        self.rows_seen += len(batch)
        assert self.name is not None
        v = np.asarray(batch.value, dtype=np.float64)
        # Learned state changes the score, so a lost snapshot would show.
        scores = v / (v + cfg.threshold) if self.rows_seen < 1000 else np.zeros_like(v)
        findings = []
        for i in range(len(batch)):
            key = str(batch.series[i])
            self.last_ts[key] = float(batch.ts[i])
            if v[i] > cfg.threshold:
                findings.append(
                    Finding(
                        self.name,
                        f"{self.name}.high",
                        {"series": key},
                        float(batch.ts[i]),
                        float(scores[i]),
                        True,
                        observed=float(v[i]),
                        scope={"host": "h1"},
                    )
                )
        return DetectorOutput(scores, findings)

    def tick(self, now: float) -> list[Finding]:
        cfg = self.config
        assert isinstance(cfg, FakeConfig) and self.name is not None
        if cfg.absent_after_s <= 0:
            return []
        return [
            Finding(self.name, f"{self.name}.absent", {"series": k}, now, 0.9, True)
            for k, t in sorted(self.last_ts.items())
            if now - t > cfg.absent_after_s
        ]

    @classmethod
    def restore(cls, data: bytes) -> FakeMetric:
        payload = pickle.loads(data)
        det = cls(**payload["params"])
        det.set_state(payload["state"])
        return det


class FakeGpu(FakeMetric):
    consumes = GpuColumns  # type: ignore[assignment]

    def update(self, batch: GpuColumns) -> DetectorOutput:  # type: ignore[override]
        return DetectorOutput(np.full(len(batch), 0.25), [])


def metrics(values: list[float], t: float = T0, series: str = "s") -> MetricColumns:
    rows = [
        MetricSample(ts=datetime.fromtimestamp(t + i, UTC), name=series, value=v)
        for i, v in enumerate(values)
    ]
    return MetricColumns.from_rows(rows)


def config(**lifecycle: Any) -> LlmwatchConfig:
    defaults = {"for_s": 0.0, "for_samples": 1}
    return parse_config({"lifecycle": {"defaults": defaults, **lifecycle}})


def test_fake_detectors_stay_out_of_discovery() -> None:
    found = detector_classes.__wrapped__()  # a fresh scan, past the cache
    assert "fake" not in found and None not in found and FakeMetric not in found.values()


def test_routes_by_batch_type_and_takes_max_score() -> None:
    dets = [
        FakeMetric(label="a", threshold=10.0),
        FakeMetric(label="b", threshold=1.0),
        FakeGpu(label="g"),
    ]
    eng = Engine(config(), detectors=dets)
    step = eng.process(metrics([0.0, 1.0, 30.0]))
    assert set(step.per_detector_scores) == {"a", "b"}
    np.testing.assert_allclose(step.per_detector_scores["a"], [0.0, 1 / 11, 0.75])
    np.testing.assert_allclose(step.scores, [0.0, 0.5, 30 / 31])
    assert sorted(f.detector for f in step.findings) == ["a", "b"]
    assert {a.detector for a in step.alerts} == {"a", "b"}
    assert eng.watermark == T0 + 2
    # The alert is stamped with event time, not the wall clock.
    assert all(a.starts_at.timestamp() == T0 + 2 for a in step.alerts)


def test_works_with_no_detectors() -> None:
    eng = Engine(config(), detectors=[])
    step = eng.process(metrics([1.0, 2.0]))
    assert step.scores.tolist() == [0.0, 0.0] and step.findings == [] and step.alerts == []
    assert eng.advance(T0 + 100) == []
    assert Engine.restore(eng.snapshot(), config(), detectors=[]).watermark == T0 + 100


def test_empty_batch_is_harmless() -> None:
    eng = Engine(config(), detectors=[FakeMetric()])
    step = eng.process(MetricColumns.empty())
    assert step.scores.shape == (0,) and step.alerts == []


def test_advance_ticks_detectors_and_lifecycle_timers() -> None:
    det = FakeMetric(label="a", absent_after_s=60.0)
    eng = Engine(config(resolve_timeout_s=120.0), detectors=[det])
    (fired,) = eng.process(metrics([50.0])).alerts
    assert fired.labels["alertname"] == "a.high"
    events = eng.advance(T0 + 61)
    assert [(e.labels["alertname"], e.status) for e in events] == [("a.absent", "firing")]
    events = eng.advance(T0 + 125)  # a.high has not been reported for 120 s
    assert ("a.high", "resolved") in [(e.labels["alertname"], e.status) for e in events]


def test_watermark_is_monotonic() -> None:
    eng = Engine(config(), detectors=[FakeMetric()])
    eng.process(metrics([1.0], t=T0 + 100))
    eng.process(metrics([1.0], t=T0))
    assert eng.watermark == T0 + 100


def test_duplicate_detector_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="unique"):
        Engine(config(), detectors=[FakeMetric(), FakeMetric()])


def test_snapshot_restore_round_trips_detectors_and_lifecycle() -> None:
    def fresh() -> list[Detector[Any]]:
        return [FakeMetric(label="a"), FakeGpu(label="g")]

    a = Engine(config(), detectors=fresh())
    a.process(metrics([50.0] * 600))
    b = Engine.restore(a.snapshot(), config(), detectors=fresh())
    assert b.watermark == a.watermark
    assert b.lifecycle.snapshot() == a.lifecycle.snapshot()
    nxt = metrics([1.0, 40.0] * 250, t=T0 + 1000)  # crosses the 1000-row state change
    sa, sb = a.process(nxt), b.process(nxt)
    np.testing.assert_array_equal(sa.scores, sb.scores)
    assert [x.model_dump() for x in sa.alerts] == [x.model_dump() for x in sb.alerts]
    assert b.detectors[0].rows_seen == 1100  # type: ignore[attr-defined]


def _sample_batches() -> list[Any]:
    gpu = [
        GpuSample(
            ts=datetime.fromtimestamp(T0, UTC) + timedelta(seconds=i),
            host="h1",
            gpu_index=0,
            gpu_uuid="GPU-0",
            sm_util_pct=50,
            mem_util_pct=40,
            mem_used_mib=1000,
            mem_total_mib=80000,
            temp_c=60,
            power_w=300,
            power_limit_w=700,
            sm_clock_mhz=1800,
        )
        for i in range(20)
    ]
    return [GpuColumns.from_rows(gpu), metrics([float(i % 5) for i in range(20)])]


def test_runs_every_registered_detector_and_round_trips() -> None:
    """Whatever detectors exist in the package: every batch kind goes through, scores are
    per row in [0, 1], and a snapshot taken mid-stream gives the same later scores."""
    eng = Engine()
    assert [d.name for d in eng.detectors] == [
        n for n, c in detector_classes().items() if getattr(eng.config.detectors, n).enabled
    ]
    for kind in COLUMNS_BY_KIND.values():
        assert eng.process(kind.empty()).scores.shape == (0,)
    first, second = _sample_batches()
    for batch in (first, second):
        step = eng.process(batch)
        assert step.scores.shape == (len(batch),)
        assert np.all((step.scores >= 0) & (step.scores <= 1))
    other = Engine.restore(eng.snapshot())
    later = [b.take(np.arange(len(b))) for b in _sample_batches()]
    for batch in later:
        np.testing.assert_array_equal(eng.process(batch).scores, other.process(batch).scores)
    assert [a.model_dump() for a in eng.advance(T0 + 3600)] == [
        a.model_dump() for a in other.advance(T0 + 3600)
    ]
