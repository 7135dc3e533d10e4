"""A worker catching up on a backlog: minutes of every topic arrive in one broker batch
each, read in whatever order the fetches come back. The error burst inside them must
fire while the backlog is processed, as it does when the same events arrive live."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import numpy as np
import orjson
import pytest

from schemas.models import Alert, AlertStatus
from stream.config import LlmwatchConfig
from stream.event_slices import event_slices
from stream.metrics import WorkerMetrics
from stream.simulate import FleetSpec, Incident, simulate
from stream.worker.engines import EnginePool
from stream.worker.ingest import BatchProcessor

SPEC = FleetSpec(duration_s=240, rate=15, hosts=3, gpus_per_host=1, gpu_interval_s=5)
TARGET = {"gateway": "gw-us-east", "model": "llama-3-8b"}
BURST = Incident(
    kind="error_burst", start_offset_s=120, duration_s=100, severity=2.5, target=TARGET
)
T_END = SPEC.start.timestamp() + SPEC.duration_s


def _backlog(order: tuple[str, ...]) -> list[Alert]:
    """Every topic's whole backlog as one batch per topic, in ``order``; no idle time."""
    raws: dict[str, list[bytes]] = defaultdict(list)
    for chunk in simulate(SPEC, [BURST]):
        for event in chunk:
            raws[event["kind"]].append(orjson.dumps(event))
    pool = EnginePool(LlmwatchConfig(), every_batches=50, every_s=60)
    proc = BatchProcessor(pool, WorkerMetrics(), clock=lambda: T_END + 1, idle_after_s=5)
    alerts: list[Alert] = []
    for name in order:
        kind, _, half = name.partition(":")  # "inference:1": its first half only
        rows = raws[kind]
        if half:
            rows = rows[: len(rows) // 2] if half == "1" else rows[len(rows) // 2 :]
        alerts += proc.process(kind=kind, topic=kind, partition=0, raws=rows).alerts
    return alerts


def _fired(alerts: list[Alert], detector: str) -> list[Alert]:
    return [
        a
        for a in alerts
        if a.detector == detector
        and a.status is AlertStatus.FIRING
        and all(a.labels.get(k) == v for k, v in TARGET.items())
    ]


@pytest.mark.parametrize(
    "order",
    [
        ("feedback", "inference", "gpu"),
        ("gpu", "feedback", "inference"),
        ("inference",),
        # GPU samples and ratings read further than inference, half-way through it.
        ("inference:1", "gpu", "feedback", "inference:2"),
    ],
)
def test_a_burst_inside_one_backlog_batch_fires_while_it_is_processed(
    order: tuple[str, ...],
) -> None:
    alerts = _backlog(order)
    fired = _fired(alerts, "error_rate")  # one per model version the burst hit
    assert fired, [(a.detector, a.status.value, a.labels) for a in alerts]
    start = SPEC.start.timestamp() + BURST.start_offset_s
    # Their onset is inside the burst, not the batch's end or the other topics' time.
    assert all(start <= a.starts_at.timestamp() < start + BURST.duration_s for a in fired)
    # The data never stopped: no series went silent behind a topic read further.
    assert not [a for a in alerts if a.detector == "traffic"]


def test_slices_are_contiguous_and_cut_at_event_time() -> None:
    ts = np.array([0.0, 1.0, 4.9, 5.0, 3.0, 11.0, np.nan, 12.0])
    assert event_slices(ts, slice_s=5.0, min_rows=1) == [(0, 3), (3, 5), (5, 8)]
    assert event_slices(ts[:3], slice_s=5.0, min_rows=1) == [(0, 3)]
    assert event_slices(np.array([]), slice_s=5.0) == []
    # Sparser data: widened on the same grid so a slice holds about min_rows.
    dense = np.arange(0.0, 100.0, 0.5)  # 200 rows over 100 s: 25 s slices of 50 rows
    assert event_slices(dense, slice_s=5.0, min_rows=50) == [
        (0, 50),
        (50, 100),
        (100, 150),
        (150, 200),
    ]
    sparse = np.arange(0.0, 600.0, 10.0)  # at most 60 s wide
    assert len(event_slices(sparse, slice_s=5.0, min_rows=512)) == 10


def test_a_topic_gone_quiet_is_found_while_the_partitions_other_topics_flow() -> None:
    """Inference stops half-way; GPU samples keep coming (wall time follows event time):
    the idle timer advances the inference stream alone, and its series go silent."""
    stop = SPEC.start.timestamp() + 120
    wall = [SPEC.start.timestamp()]
    pool = EnginePool(LlmwatchConfig(), every_batches=50, every_s=60)
    proc = BatchProcessor(pool, WorkerMetrics(), clock=lambda: wall[0], idle_after_s=5)
    alerts: list[Alert] = []
    for chunk in simulate(SPEC, []):
        by_kind: dict[str, list[bytes]] = defaultdict(list)
        for event in chunk:
            t = datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()
            if not (event["kind"] == "inference" and t >= stop):
                by_kind[event["kind"]].append(orjson.dumps(event))
            wall[0] = max(wall[0], t)
        for kind, raws in by_kind.items():
            alerts += proc.process(kind=kind, topic=kind, partition=0, raws=raws).alerts
        alerts += proc.advance_idle()
    silent = [
        a
        for a in alerts
        if a.labels.get("alertname") == "traffic.series_silent" and a.status is AlertStatus.FIRING
    ]
    assert len(silent) == 9  # every (model, gateway) series of the fleet
    # Found from the inference stream's own time, while the GPU topic still flowed.
    assert all(stop < a.starts_at.timestamp() < stop + 60 for a in silent)
