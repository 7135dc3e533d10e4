"""The live worker's idle timer: however coarsely wall time moves a quiet partition's
event time on, the alerts (timestamps included) are those of a tick every second."""

from __future__ import annotations

from collections import defaultdict

import orjson

from schemas.models import Alert, AlertStatus
from stream.config import LlmwatchConfig
from stream.metrics import WorkerMetrics
from stream.simulate import FleetSpec, simulate
from stream.worker.engines import EnginePool
from stream.worker.ingest import BatchProcessor

SPEC = FleetSpec(duration_s=240, rate=15, hosts=3, gpus_per_host=1, gpu_interval_s=5)
T_END = SPEC.start.timestamp() + SPEC.duration_s


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _fed(clock: Clock) -> BatchProcessor:
    pool = EnginePool(LlmwatchConfig(), every_batches=5, every_s=60)
    proc = BatchProcessor(pool, WorkerMetrics(), clock=clock, idle_after_s=5)
    for chunk in simulate(SPEC, []):
        by_kind: dict[str, list[bytes]] = defaultdict(list)
        for event in chunk:
            by_kind[event["kind"]].append(orjson.dumps(event))
        for kind, raws in by_kind.items():
            proc.process(kind=kind, topic=kind, partition=0, raws=raws)
    return proc


def _idle(step_s: float, total_s: float) -> list[Alert]:
    """Every producer stops at the end of the simulation; the worker's timer fires every
    ``step_s`` of wall time for ``total_s``."""
    clock = Clock(T_END)
    proc = _fed(clock)
    alerts: list[Alert] = []
    for _ in range(round(total_s / step_s)):
        clock.t += step_s
        alerts += proc.advance_idle()
    return alerts


def test_idle_ticks_every_minute_give_the_alerts_of_ticks_every_second() -> None:
    coarse = _idle(60.0, 900.0)
    fine = _idle(1.0, 900.0)
    assert [a.model_dump() for a in coarse] == [a.model_dump() for a in fine]
    silent = [a for a in coarse if a.detector == "traffic" and a.status is AlertStatus.FIRING]
    assert silent  # the fleet went quiet: found by ticks alone
