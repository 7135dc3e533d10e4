"""The worker's alerts must not depend on how its batches happen to be cut.

The live worker hands the engine whatever ``take_events`` returned for a partition:
a few hundred rows at high traffic, covering a fraction of a second. Issue #4: at
~2k events/s the benchmark's error bursts raised nothing live, while the same data
in big offline batches fired error_rate. The cause is in the error_rate detector,
not the worker: while a series is young (less history than the window's half-life,
e.g. after a worker starts with no saved state) its baseline holds the same rows as
its window, each small batch of the burst stays under ``learn_gate`` and is learned
into the baseline, and the baseline follows the burst up.
"""

from __future__ import annotations

import orjson
import pytest

from stream.config import LlmwatchConfig
from stream.metrics import WorkerMetrics
from stream.simulate import FleetSpec, Incident, simulate
from stream.worker.engines import EnginePool
from stream.worker.ingest import BatchProcessor

TARGET = {"gateway": "gw-us-east", "model": "llama-3-8b"}
# One series at 150 events/s: 20 s of normal traffic, then 10 s at ~75 % errors.
SPEC = FleetSpec(
    seed=5,
    gateways=("gw-us-east",),
    models=("llama-3-8b",),
    versions=(1,),
    hosts=1,
    gpus_per_host=1,
    rate=150.0,
    duration_s=30.0,
    gpu_interval_s=3600.0,
    feedback_fraction=0.0,
)
BURST = Incident(
    kind="error_burst", start_offset_s=20.0, duration_s=10.0, severity=2.5, target=TARGET
)
CONFIG = LlmwatchConfig.model_validate({"lifecycle": {"defaults": {"for_s": 0.0}}})


@pytest.fixture(scope="module")
def raws() -> list[bytes]:
    return [
        orjson.dumps(e)
        for chunk in simulate(SPEC, [BURST])
        for e in chunk
        if e["kind"] == "inference"
    ]


def fired(raws: list[bytes], batch: int) -> list[str]:
    processor = BatchProcessor(EnginePool(CONFIG), WorkerMetrics(), clock=lambda: 2e9)
    out: list[str] = []
    for i in range(0, len(raws), batch):
        step = processor.process(kind="inference", topic="t", partition=0, raws=raws[i : i + batch])
        out.extend(a.detector for a in step.alerts if a.status.value == "firing")
    return out


def test_burst_fires_in_big_batches(raws: list[bytes]) -> None:
    assert "error_rate" in fired(raws, 1000)


def test_burst_fires_in_small_live_sized_batches(raws: list[bytes]) -> None:
    # 20 rows is ~0.13 s of this series: what a busy partition gets per batch live.
    assert "error_rate" in fired(raws, 20)
