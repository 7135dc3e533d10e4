"""Engine snapshots in a changelog-backed Faust table, one key per source partition.

Faust's ``table[key] = value`` needs a current stream event to pick the changelog
partition, and the batch data plane (``stream.worker.consumer``) has none. We know the partition
ourselves, so a save writes the local store and sends the changelog record to
that same partition explicitly: the worker that owns source partition N recovers
changelog partition N, and with it exactly the engines it needs.

The rocksdb store keeps one database per partition and picks it from the current
event too: writes from a timer or a rebalance handler fail (no event), and reads in
an agent go to the partition of whichever event the batch ended on. So with rocksdb
every read and write names the partition's database itself (``_PartitionDBs``).

Effectively once without transactions (0.9 has none): each manifest records, per source
topic, the last offset its snapshot has seen, and the worker acks (lets Faust commit)
an event only once a snapshot covering it is saved. After a crash the consumer
resumes at or before the snapshot, and ``Progress`` drops the events the snapshot
already holds. State is checkpointed every N batches or T seconds, and at once after
a batch that raised alerts or dead letters, so a replay repeats neither unless the
crash falls between publishing them and sending the snapshot (milliseconds; 0.9
has no transactions to close that gap).
"""

from __future__ import annotations

import bisect
import hashlib
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson

# (changelog partition, key, value or None for a tombstone)
ChangelogSend = Callable[[int, bytes, bytes | None], None]
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

    def __init__(
        self, table: Any, chunk_bytes: int = CHUNK_BYTES, send: ChangelogSend | None = None
    ) -> None:
        self.table = table
        self.chunk_bytes = int(chunk_bytes)
        # Default: Faust's buffered send_changelog; tests record the records instead.
        self._send = send if send is not None else self._send_changelog
        self._store = _store_for(table)

    def _manifest(self, partition: int) -> dict[str, Any] | None:
        raw = self._store.get(partition, state_key(partition))
        if raw is None:
            return None
        value: dict[str, Any] = orjson.loads(raw)
        return value

    def load(self, partition: int) -> bytes | None:
        man = self._manifest(partition)
        if man is None:
            return None
        gen = int(man["generation"])
        get = self._store.get
        parts: list[bytes] = []
        for i in range(man["chunks"]):
            chunk = get(partition, _chunk_key(partition, gen, i))
            if chunk is None:
                return None  # a changelog compacted mid-write: start fresh rather than guess
            parts.append(bytes(chunk))
        blob = b"".join(parts)
        if hashlib.sha256(blob).hexdigest() != man["sha256"]:
            return None
        return zlib.decompress(blob)

    def offsets(self, partition: int) -> dict[str, int]:
        """Per source topic, the last offset the saved snapshot of ``partition`` has seen."""
        man = self._manifest(partition)
        if man is None:
            return {}
        return {str(t): int(o) for t, o in man.get("offsets", {}).items()}

    def save(
        self, partition: int, snapshot: bytes, offsets: Mapping[str, int] | None = None
    ) -> None:
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
            "offsets": dict(offsets or {}),
        }
        self._put(partition, state_key(partition), orjson.dumps(manifest))
        if old is not None:
            for i in range(int(old["chunks"])):
                self._delete(partition, _chunk_key(partition, int(old["generation"]), i))

    def _put(self, partition: int, key: bytes, value: bytes) -> None:
        self._store.put(partition, key, value)
        self._send(partition, key, value)

    def _delete(self, partition: int, key: bytes) -> None:
        self._store.delete(partition, key)
        self._send(partition, key, None)

    def _send_changelog(self, partition: int, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.table.send_changelog(partition, key, None, value_serializer="raw")
        else:
            self.table.send_changelog(partition, key, value)


class _MappingData:
    """A partition-agnostic store (Faust's memory store, a dict in tests)."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def get(self, partition: int, key: bytes) -> bytes | None:
        value: bytes | None = self.data.get(key)
        return value

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def delete(self, partition: int, key: bytes) -> None:
        self.data.pop(key, None)


class _PartitionDBs:
    """Faust's rocksdb store, one database per changelog partition, addressed explicitly.

    ``_db_for_partition`` and ``_key_index`` are that store's own (faust-streaming
    0.15); keeping the index current lets Faust's event-less lookups find our keys.
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    def get(self, partition: int, key: bytes) -> bytes | None:
        value = self.store._db_for_partition(partition).get(key)
        return None if value is None else bytes(value)

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        self.store._db_for_partition(partition).put(key, value)
        self.store._key_index[key] = partition

    def delete(self, partition: int, key: bytes) -> None:
        self.store._db_for_partition(partition).delete(key)
        self.store._key_index.pop(key, None)


def _store_for(table: Any) -> _MappingData | _PartitionDBs:
    data = table.data
    if hasattr(data, "_db_for_partition") and hasattr(data, "_key_index"):
        return _PartitionDBs(data)
    if "rocksdb" in type(data).__module__:
        # Mapping access on a RocksDB store writes to the current event's partition,
        # which would silently mix engines: refuse rather than corrupt state.
        raise RuntimeError(
            "LLMWATCH_STORE=rocksdb: this faust-streaming's RocksDB store lacks the "
            "per-partition API llmwatch saves engine state with; use "
            "LLMWATCH_STORE=memory (state is restored from the changelog) or "
            "faust-streaming 0.11-0.15"
        )
    return _MappingData(data)


Ack = Callable[[str, int, int], None]  # (topic, partition, last offset done)


def _no_ack(topic: str, partition: int, offset: int) -> None:
    pass


class Progress:
    """Per source partition: offsets reflected in the engine, and offsets awaiting an ack.

    Offsets are keyed (topic, partition). After an assignment the first batch of a
    partition seeds them from the saved manifest, so re-delivered events are dropped.
    An offset is acked (``ack``: Faust may commit past it) only once a saved snapshot
    covers it.
    """

    def __init__(self, state: EngineStateTable, ack: Ack = _no_ack) -> None:
        self.state = state
        self.ack = ack
        self.done: dict[tuple[str, int], int] = {}
        self._saved: dict[tuple[str, int], int] = {}
        self._seeded: set[int] = set()
        self._held: dict[int, dict[str, int]] = {}

    def fresh(self, topic: str, partition: int, offsets: Sequence[int]) -> int:
        """How many leading ``offsets`` (ascending) the engine has already seen."""
        if partition not in self._seeded:
            for t, off in self.state.offsets(partition).items():
                self.done[(t, partition)] = max(off, self.done.get((t, partition), -1))
                self._saved[(t, partition)] = off
            self._seeded.add(partition)
        floor = self.done.get((topic, partition), -1)
        seen = bisect.bisect_right(offsets, floor)
        if seen:
            last = offsets[seen - 1]
            if last <= self._saved.get((topic, partition), -1):
                self.ack(topic, partition, last)
            else:  # seen, but only an unsaved engine holds it: ack with the next save
                self.hold(topic, partition, last)
        return seen

    def advance(self, topic: str, partition: int, offset: int) -> None:
        self.done[(topic, partition)] = offset

    def offsets(self, partition: int) -> dict[str, int]:
        return {t: off for (t, p), off in self.done.items() if p == partition}

    def seen(self, partitions: Iterable[int]) -> dict[tuple[str, int], int]:
        """Last offset reflected in state per (topic, partition), for ``partitions``:
        in memory once a batch arrived, else what the saved snapshot says."""
        out: dict[tuple[str, int], int] = {}
        for p in partitions:
            if p not in self._seeded:  # read only: seeding waits for recovery + a batch
                out.update({(t, p): off for t, off in self.state.offsets(p).items()})
        out.update({k: v for k, v in self.done.items() if k[1] in partitions})
        return out

    def hold(self, topic: str, partition: int, offset: int) -> None:
        held = self._held.setdefault(partition, {})
        if offset > held.get(topic, -1):
            held[topic] = offset

    def release(self, partitions: Iterable[int]) -> None:
        """The partitions' snapshots were just saved: ack what they hold."""
        for p in partitions:
            for (t, q), off in self.done.items():
                if q == p:
                    self._saved[(t, q)] = off
            for topic, offset in self._held.pop(p, {}).items():
                self.ack(topic, p, offset)

    def held(self) -> list[int]:
        return [p for p, offs in self._held.items() if offs]

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions revoked: their un-acked events belong to the next owner now."""
        for p in partitions:
            self._held.pop(p, None)
            self._seeded.discard(p)
            for key in [k for k in self.done if k[1] == p]:
                del self.done[key]
                self._saved.pop(key, None)
