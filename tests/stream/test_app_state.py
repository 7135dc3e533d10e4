"""EngineStateTable: chunked, compressed snapshots that survive a changelog replay."""

from __future__ import annotations

import os
from typing import Any

from stream.worker.state import EngineStateTable, state_key


class RecordingTable:
    """The two things EngineStateTable uses of a Faust table: ``data`` and ``send_changelog``."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog: list[tuple[int, bytes, bytes | None]] = []

    def send_changelog(self, partition: int, key: bytes, value: Any, **kw: Any) -> None:
        self.changelog.append((partition, key, value))


def _replay(changelog: list[tuple[int, bytes, bytes | None]]) -> RecordingTable:
    """What a recovering worker's table holds after reading the changelog in order."""
    t = RecordingTable()
    for _, key, value in changelog:
        if value is None:
            t.data.pop(key, None)
        else:
            t.data[key] = value
    return t


def test_large_snapshot_round_trips_through_changelog_in_chunks() -> None:
    table = RecordingTable()
    state = EngineStateTable(table, chunk_bytes=1000)
    snap = os.urandom(5000) + bytes(100_000)  # incompressible part forces several chunks
    state.save(3, snap)
    assert {p for p, _, _ in table.changelog} == {3}
    assert len(table.changelog) >= 6  # >= 5 chunks, then the manifest
    assert table.changelog[-1][1] == state_key(3)
    assert EngineStateTable(_replay(table.changelog)).load(3) == snap


def test_two_generations_are_kept_and_the_one_before_is_deleted() -> None:
    table = RecordingTable()
    state = EngineStateTable(table, chunk_bytes=1000)
    state.save(1, os.urandom(3000))
    state.save(1, os.urandom(2500))
    third = os.urandom(2500)
    state.save(1, third)
    recovered = _replay(table.changelog)
    assert EngineStateTable(recovered).load(1) == third
    assert all(b"@0#" not in k for k in recovered.data)  # generation 0 deleted
    assert any(b"@1#" in k for k in recovered.data)  # generation 1 kept as the fallback


def test_crash_mid_save_recovers_previous_snapshot() -> None:
    table = RecordingTable()
    state = EngineStateTable(table, chunk_bytes=1000)
    first = os.urandom(3000)
    state.save(2, first)
    done = len(table.changelog)
    state.save(2, os.urandom(3000))
    torn = table.changelog[: done + 2]  # new chunks partly written, manifest not yet
    assert EngineStateTable(_replay(torn)).load(2) == first


def test_unknown_partition_has_no_state() -> None:
    assert EngineStateTable(RecordingTable()).load(0) is None
