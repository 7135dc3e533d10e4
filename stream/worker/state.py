"""Engine snapshots in a changelog-backed Faust table, one key per source partition.

Faust's ``table[key] = value`` needs a current stream event to pick the changelog
partition, and batches from ``take_events`` have none. We know the partition
ourselves, so a save writes the local store and sends the changelog record to
that same partition explicitly: the worker that owns source partition N recovers
changelog partition N, and with it exactly the engines it needs.

Trade-off: state is checkpointed every N batches or T seconds, not per event.
A worker killed between checkpoints restarts from the last snapshot and
re-consumes from the last committed offset, so alerts raised in that gap can be
published again. Their ``alert_id`` is stable (fingerprint + start time), so
consumers dedupe by ``alert_id``; notifiers are idempotent by fingerprint.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

import orjson

KEY_PREFIX = "engine-"
# Below Kafka's default 1 MB message limit with room for the record overhead.
CHUNK_BYTES = 256 * 1024


def state_key(partition: int) -> bytes:
    return f"{KEY_PREFIX}{partition}".encode()


def _chunk_key(partition: int, generation: int, index: int) -> bytes:
    return f"{KEY_PREFIX}{partition}@{generation}#{index}".encode()


class EngineStateTable:
    """Engine snapshots in a Faust ``Table(key_type=bytes, value_type=bytes)``.

    A snapshot is zlib-compressed (detector state is mostly zeros) and split into
    chunks under generation-numbered keys; the manifest under ``engine-N`` is written
    last and names the generation, its chunk count and digest. Changelog order is
    kept per partition, so a recovered manifest only ever points at complete chunks;
    the previous generation's chunks are deleted once the new manifest is out.
    """

    def __init__(self, table: Any, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.table = table
        self.chunk_bytes = int(chunk_bytes)

    def _manifest(self, partition: int) -> dict[str, Any] | None:
        raw = self.table.data.get(state_key(partition))
        if raw is None:
            return None
        value: dict[str, Any] = orjson.loads(raw)
        return value

    def load(self, partition: int) -> bytes | None:
        man = self._manifest(partition)
        if man is None:
            return None
        gen = int(man["generation"])
        parts = [self.table.data.get(_chunk_key(partition, gen, i)) for i in range(man["chunks"])]
        if any(p is None for p in parts):
            return None  # a changelog compacted mid-write: start fresh rather than guess
        blob = b"".join(bytes(p) for p in parts)
        if hashlib.sha256(blob).hexdigest() != man["sha256"]:
            return None
        return zlib.decompress(blob)

    def save(self, partition: int, snapshot: bytes) -> None:
        old = self._manifest(partition)
        gen = int(old["generation"]) + 1 if old is not None else 0
        blob = zlib.compress(snapshot, 1)
        step = self.chunk_bytes
        chunks = [blob[i : i + step] for i in range(0, len(blob), step)] or [b""]
        for i, chunk in enumerate(chunks):
            self._put(partition, _chunk_key(partition, gen, i), chunk)
        manifest = {
            "generation": gen,
            "chunks": len(chunks),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "raw_bytes": len(snapshot),
        }
        self._put(partition, state_key(partition), orjson.dumps(manifest))
        if old is not None:
            for i in range(int(old["chunks"])):
                self._delete(partition, _chunk_key(partition, int(old["generation"]), i))

    def _put(self, partition: int, key: bytes, value: bytes) -> None:
        self.table.data[key] = value
        self.table.send_changelog(partition, key, value)

    def _delete(self, partition: int, key: bytes) -> None:
        self.table.data.pop(key, None)
        self.table.send_changelog(partition, key, None, value_serializer="raw")
