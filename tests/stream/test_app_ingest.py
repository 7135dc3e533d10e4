"""BatchProcessor + EnginePool: the worker's decisions, with no broker and a fake clock."""

from __future__ import annotations

import base64
import time
from collections import defaultdict
from collections.abc import Iterator

import orjson
import pytest

from schemas.models import AlertStatus
from stream.config import LlmwatchConfig
from stream.metrics import WorkerMetrics
from stream.simulate import FleetSpec, Incident, simulate
from stream.worker.engines import EnginePool
from stream.worker.ingest import BatchProcessor

SPEC = FleetSpec(duration_s=240, rate=15, hosts=3, gpus_per_host=1, gpu_interval_s=5)
BURST = Incident(
    kind="error_burst",
    start_offset_s=120,
    duration_s=100,
    severity=2.5,
    target={"gateway": "gw-us-east", "model": "llama-3-8b"},
)
T_END = SPEC.start.timestamp() + SPEC.duration_s


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _batches() -> Iterator[tuple[str, list[bytes]]]:
    for chunk in simulate(SPEC, [BURST]):
        by_kind: dict[str, list[bytes]] = defaultdict(list)
        for event in chunk:
            by_kind[event["kind"]].append(orjson.dumps(event))
        yield from by_kind.items()


@pytest.fixture(scope="module")
def batches() -> list[tuple[str, list[bytes]]]:
    return list(_batches())


def _processor(clock: Clock, saved: dict[int, bytes] | None = None) -> BatchProcessor:
    pool = EnginePool(LlmwatchConfig(), every_batches=5, every_s=60)
    store = saved if saved is not None else {}
    return BatchProcessor(pool, WorkerMetrics(), load=store.get, clock=clock, idle_after_s=5)


def _error_alerts(alerts: list) -> list:  # type: ignore[type-arg]
    return [
        a
        for a in alerts
        if a.detector == "error_rate"
        and a.labels.get("gateway") == "gw-us-east"
        and a.labels.get("model") == "llama-3-8b"
    ]


def test_rejects_become_dead_letters_with_offsets(batches: list[tuple[str, list[bytes]]]) -> None:
    proc = _processor(Clock(T_END + 10))
    kind, raws = next((k, r) for k, r in batches if k == "inference")
    bad = [b"{not json", orjson.dumps({**orjson.loads(raws[0]), "latency_ms": -5}), b"[1]"]
    mixed = [raws[0], bad[0], raws[1], bad[1], bad[2]]
    out = proc.process(kind=kind, topic="in", partition=2, raws=mixed, offsets=[10, 11, 12, 13, 14])
    assert out.accepted == 2
    assert [(d.offset, d.partition, d.topic) for d in out.dead_letters] == [
        (11, 2, "in"),
        (13, 2, "in"),
        (14, 2, "in"),
    ]
    assert [base64.b64decode(d.raw_b64) for d in out.dead_letters] == [bad[0], bad[1], bad[2]]
    assert "latency_ms" in out.dead_letters[1].reason
    text = proc.metrics.render().decode()
    assert 'llmwatch_rejects_total{reason_class="json",topic="in"} 1.0' in text
    assert 'llmwatch_rejects_total{reason_class="latency_ms",topic="in"} 1.0' in text
    assert 'llmwatch_events_in_total{topic="in"} 5.0' in text


def test_injected_error_burst_fires_once(batches: list[tuple[str, list[bytes]]]) -> None:
    proc = _processor(Clock(T_END + 10))
    alerts = []
    for kind, raws in batches:
        alerts += proc.process(kind=kind, topic=kind, partition=0, raws=raws).alerts
    firing = [a for a in _error_alerts(alerts) if a.status is AlertStatus.FIRING]
    assert firing, [a.title for a in alerts]
    # The lifecycle never fires the same alert twice while it is open.
    assert len({a.alert_id for a in firing}) == len(firing)
    assert any(a.detector == "error_rate" for a in proc.pool.active_alerts())


def test_restart_from_checkpoint_does_not_fire_again(
    batches: list[tuple[str, list[bytes]]],
) -> None:
    clock = Clock(T_END + 10)
    first = _processor(clock)
    half = len(batches) * 3 // 4
    before = []
    for kind, raws in batches[:half]:
        before += first.process(kind=kind, topic=kind, partition=0, raws=raws).alerts
    assert any(a.status is AlertStatus.FIRING for a in _error_alerts(before))
    saved = {0: first.pool.engines[0].snapshot()}

    second = _processor(clock, saved)  # a new worker that recovered the table
    after = []
    for kind, raws in batches[half:]:
        after += second.process(kind=kind, topic=kind, partition=0, raws=raws).alerts
    assert 0 in second.pool.restored
    assert not [a for a in _error_alerts(after) if a.status is AlertStatus.FIRING]


def test_checkpoint_due_after_n_batches_or_t_seconds() -> None:
    clock = Clock(1000.0)
    pool = EnginePool(LlmwatchConfig(), every_batches=3, every_s=30)
    pool.get(1, lambda p: None, clock())
    pool.get(2, lambda p: None, clock())
    for _ in range(3):
        pool.touched(1)
    pool.touched(2)
    assert pool.due(clock()) == [1]
    pool.saved(1, clock())
    assert pool.due(clock() + 31) == [2]
    assert pool.dirty() == [2]


def test_idle_partition_advances_by_wall_time(batches: list[tuple[str, list[bytes]]]) -> None:
    clock = Clock(T_END + 10)
    proc = _processor(clock)
    kind, raws = batches[0]
    proc.process(kind=kind, topic=kind, partition=3, raws=raws)
    mark = proc.pool.engines[3].watermark
    clock.t += 2
    proc.advance_idle()
    assert proc.pool.engines[3].watermark == mark  # not idle long enough yet
    clock.t += 28
    proc.advance_idle()
    assert proc.pool.engines[3].watermark == pytest.approx(mark + 30)


def test_decode_paths_are_counted_per_topic(batches: list[tuple[str, list[bytes]]]) -> None:
    proc = _processor(Clock(T_END))
    raws = next(r for kind, r in batches if kind == "inference")[:50]
    proc.process(kind="inference", topic="llmwatch.inference", partition=0, raws=raws)
    # A producer that adds its own field sends its batches down the per-message path.
    extra = [orjson.dumps({**orjson.loads(r), "team": "search"}) for r in raws[:10]]
    proc.process(kind="inference", topic="llmwatch.inference", partition=0, raws=extra)
    # An integer too big for a float: that row alone is re-checked by the reference.
    big = orjson.dumps({**orjson.loads(raws[4]), "prompt_tokens": 0})
    big = big.replace(b'"prompt_tokens":0', b'"prompt_tokens":1' + b"0" * 30)
    huge = [*raws[:4], big]
    proc.process(kind="inference", topic="llmwatch.inference", partition=0, raws=huge)

    def count(path: str) -> float | None:
        return proc.metrics.registry.get_sample_value(
            "llmwatch_decode_messages_total", {"topic": "llmwatch.inference", "path": path}
        )

    assert count("columnar") == 50 + 5
    assert count("per_message") == 10
    assert count("reference") == 1


def test_saved_shows_only_once_a_later_commit_flushed_the_changelog() -> None:
    # The changelog send is buffered: a snapshot is on the broker (and a crash restores
    # it) only once a commit that began after it succeeded, since Faust flushes the
    # producer before it commits.
    pool = EnginePool(LlmwatchConfig(), every_batches=3, every_s=30)
    pool.get(0, lambda p: None, 1000.0)
    pool.get(1, lambda p: None, 1000.0)
    before = time.monotonic()
    pool.saved(0, 1000.0)
    assert pool.saved_once == set()
    pool.flushed(before)  # that commit began before the save: proves nothing
    assert pool.saved_once == set()
    pool.flushed(time.monotonic())
    assert pool.saved_once == {0}
    pool.saved(1, 1001.0)
    pool.drop([1])
    pool.flushed(time.monotonic())
    assert pool.saved_once == {0}


def test_saved_waits_for_the_changelog_sends_themselves() -> None:
    # Faust's flush gives up after 0.1 s without progress: a commit proves the save
    # only once its changelog sends are confirmed.
    pool = EnginePool(LlmwatchConfig(), every_batches=3, every_s=30)
    pool.get(0, lambda p: None, 1000.0)
    pool.saved(0, 1000.0)
    in_flight = {0}
    pool.flushed(time.monotonic(), lambda p: p not in in_flight)
    assert pool.saved_once == set()
    in_flight.clear()
    pool.flushed(time.monotonic(), lambda p: p not in in_flight)
    assert pool.saved_once == {0}


def test_a_checked_engine_shows_its_open_alerts_before_its_first_new_event(
    batches: list[tuple[str, list[bytes]]],
) -> None:
    # After a takeover, a partition whose re-read events were all in its snapshot has
    # an engine restored and checked but not yet started: its open alerts still show.
    clock = Clock(T_END + 10)
    first = _processor(clock)
    for kind, raws in batches[: len(batches) * 3 // 4]:
        first.process(kind=kind, topic=kind, partition=0, raws=raws)
    open_ids = {a.alert_id for a in first.pool.active_alerts()}
    assert open_ids
    second = EnginePool(LlmwatchConfig())
    second.check(0, first.pool.engines[0].snapshot())
    assert second.engines == {}
    assert {a.alert_id for a in second.active_alerts()} == open_ids
