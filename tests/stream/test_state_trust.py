"""State you can trust: a saved snapshot that cannot be loaded never lets its offsets
be trusted. The newest generation torn or corrupt -> the previous one and its offsets;
nothing loadable (or a manifest that is not JSON) -> a fresh engine and no offsets, so
the events after the committed offset are read again rather than skipped."""

from __future__ import annotations

import logging
import os
from typing import Any

import orjson
import pytest

from stream.worker.state import EngineStateTable, Progress, state_key
from tests.stream.test_app_state import RecordingTable


class Acks:
    def __init__(self) -> None:
        self.through: dict[tuple[str, int], int] = {}

    def __call__(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        assert offset >= self.through.get(key, -1), "acks must not go backwards"
        self.through[key] = offset


def _two_saves(table: RecordingTable) -> tuple[bytes, bytes]:
    state = EngineStateTable(table, chunk_bytes=1000)
    first, second = os.urandom(3000), os.urandom(3000)
    state.save(0, first, {"t": 10})
    state.save(0, second, {"t": 20})
    return first, second


def _newest_chunk(table: RecordingTable, index: int = 0) -> bytes:
    man = orjson.loads(table.data[state_key(0)])
    return f"engine-0@{man['generation']}#{index}".encode()


def _failures() -> tuple[list[tuple[int, str]], Any]:
    seen: list[tuple[int, str]] = []
    return seen, lambda p, reason: seen.append((p, reason))


@pytest.mark.parametrize("damage", ["chunk_missing", "digest"])
def test_a_damaged_newest_snapshot_falls_back_to_the_previous_one(
    damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    table = RecordingTable()
    first, _ = _two_saves(table)
    if damage == "chunk_missing":
        del table.data[_newest_chunk(table, 1)]
    else:
        table.data[_newest_chunk(table)] = b"x" * 1000
    seen, on_failure = _failures()
    state = EngineStateTable(table, on_failure=on_failure)
    with caplog.at_level(logging.ERROR, logger="llmwatch.worker"):
        assert state.load(0) == first
    assert state.trusted_offsets(0) == {"t": 10}  # the fallback's offsets, not the manifest's
    assert state.offsets(0) == {"t": 20}  # (what the manifest claims, for display only)
    assert seen == [(0, damage)]
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "falling back to generation 0" in caplog.records[0].getMessage()
    # Progress resumes after the fallback: offsets 11..20 are processed again.
    progress = Progress(state, Acks())
    assert progress.fresh("t", 0, list(range(5, 25))) == 6  # 5..10 already in state


def test_the_first_save_after_a_fallback_keeps_the_generation_that_loaded() -> None:
    # Built on the raw manifest, that save kept the torn newest as its previous and
    # deleted the good one: a crash before the next save then had nothing to load.
    table = RecordingTable()
    first, _ = _two_saves(table)
    table.data[_newest_chunk(table)] = b"x" * 1000  # generation 1 torn
    state = EngineStateTable(table, chunk_bytes=1000)
    assert state.load(0) == first
    third = os.urandom(3000)
    state.save(0, third, {"t": 30})
    man = orjson.loads(table.data[state_key(0)])
    assert man["generation"] == 2 and man["previous"]["generation"] == 0
    assert not [k for k in table.data if k.startswith(b"engine-0@1#")]  # torn one deleted
    table.data[_newest_chunk(table)] = b"y" * 1000  # and now generation 2 torn too
    again = EngineStateTable(table)
    assert again.load(0) == first and again.trusted_offsets(0) == {"t": 10}


def test_a_save_after_nothing_loaded_deletes_both_unusable_generations() -> None:
    table = RecordingTable()
    _two_saves(table)
    for gen in (0, 1):
        table.data[f"engine-0@{gen}#0".encode()] = b"z" * 1000
    state = EngineStateTable(table, chunk_bytes=1000)
    assert state.load(0) is None
    state.save(0, b"fresh", {"t": 40})
    man = orjson.loads(table.data[state_key(0)])
    assert "previous" not in man
    assert sorted(k for k in table.data if b"@" in k) == [b"engine-0@2#0"]


def test_both_generations_damaged_trusts_no_offsets() -> None:
    table = RecordingTable()
    _two_saves(table)
    for key in [k for k in table.data if b"#" in k]:
        table.data[key] = b"junk"
    seen, on_failure = _failures()
    state = EngineStateTable(table, on_failure=on_failure)
    assert state.load(0) is None
    assert state.trusted_offsets(0) == {}
    assert [r for _, r in seen] == ["digest", "digest"]
    assert Progress(state, Acks()).fresh("t", 0, [3, 4, 5]) == 0  # nothing skipped


@pytest.mark.parametrize("manifest", [b"{not json", b"[1, 2]", b'{"generation": 1}'])
def test_a_manifest_that_is_not_one_is_a_failure_not_a_crash(
    manifest: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    table = RecordingTable()
    _two_saves(table)
    table.data[state_key(0)] = manifest
    seen, on_failure = _failures()
    state = EngineStateTable(table, on_failure=on_failure)
    with caplog.at_level(logging.ERROR, logger="llmwatch.worker"):
        assert state.load(0) is None
    assert state.trusted_offsets(0) == {} and state.offsets(0) == {}
    assert seen == [(0, "manifest")] and "no loadable snapshot" in caplog.text
    assert Progress(state, Acks()).fresh("t", 0, [0, 1]) == 0
    state.save(0, b"again", {"t": 1})  # and saving over it works
    assert EngineStateTable(table).load(0) == b"again"


def test_a_snapshot_the_engine_cannot_read_falls_back_too() -> None:
    table = RecordingTable()
    state = EngineStateTable(table, chunk_bytes=1000)
    state.save(0, b"good", {"t": 1})
    state.save(0, b"unreadable", {"t": 2})

    def check(partition: int, snap: bytes) -> None:
        if snap != b"good":
            raise ValueError("engine snapshot format 99 is not 1")

    seen, on_failure = _failures()
    state = EngineStateTable(table, check=check, on_failure=on_failure)
    assert state.load(0) == b"good" and state.trusted_offsets(0) == {"t": 1}
    assert seen == [(0, "engine")]


def test_commits_wait_until_the_older_kept_snapshot_covers_them() -> None:
    table = RecordingTable()
    state = EngineStateTable(table)
    acks = Acks()
    progress = Progress(state, acks)
    assert progress.fresh("t", 0, [0, 1, 2]) == 0
    progress.advance("t", 0, 2)
    state.save(0, b"g0", progress.offsets(0))
    progress.release([0])
    assert acks.through == {}  # only one snapshot covers 0..2 yet
    progress.advance("t", 0, 7)
    state.save(0, b"g1", progress.offsets(0))
    progress.release([0])
    assert acks.through == {("t", 0): 2}  # g0 is now the older kept one
    # g1 lost: a restart falls back to g0 and the consumer, committed at 3, re-reads 3..7.
    del table.data[_newest_chunk(table)]
    again = Progress(EngineStateTable(table), Acks())
    assert again.fresh("t", 0, [3, 4, 5, 6, 7]) == 0


def test_a_gap_in_offsets_is_reported_as_skipped() -> None:
    progress = Progress(EngineStateTable(RecordingTable()), Acks())
    assert progress.skipped("t", 0, 50) == 0  # nothing known yet: no claim
    progress.advance("t", 0, 9)
    assert progress.skipped("t", 0, 10) == 0
    assert progress.skipped("t", 0, 42) == 32


def test_a_quiet_partition_is_saved_once_more_so_its_commits_catch_up() -> None:
    from stream.config import LlmwatchConfig
    from stream.worker.engines import EnginePool

    pool = EnginePool(LlmwatchConfig(), every_batches=50, every_s=10.0)
    pool.get(0, lambda p: None, wall=100.0)
    pool.get(1, lambda p: None, wall=100.0)
    pool.touched(1)  # partition 1 is still changing: its next save is due anyway
    assert pool.settled([0, 1], wall=105.0) == []  # not a whole interval yet
    assert pool.settled([0, 1], wall=110.0) == [0]
    assert pool.settled([2], wall=100.0) == [2]  # no engine (only rejects): nothing to save


def test_the_engine_restored_by_the_check_is_the_one_the_pool_uses() -> None:
    from stream.config import LlmwatchConfig
    from stream.engine import Engine
    from stream.worker.engines import EnginePool

    pool = EnginePool(LlmwatchConfig())
    table = RecordingTable()
    EngineStateTable(table).save(0, Engine().snapshot(), {"t": 3})
    state = EngineStateTable(table, check=pool.check)
    assert state.trusted_offsets(0) == {"t": 3}
    checked = pool.checked[0]
    assert pool.get(0, state.load, wall=0.0) is checked  # restored once, not twice
    assert pool.checked == {} and 0 in pool.restored
