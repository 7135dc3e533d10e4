"""Where engine snapshots are kept: Faust's memory store (a mapping) or its RocksDB
store, one database per partition, addressed explicitly (see ``stream.worker.state``)."""

from __future__ import annotations

from typing import Any

from stream import compat


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

    The database per partition and the key index are that store's own (faust-streaming
    0.15, see ``stream.compat``); keeping the index current lets Faust's event-less
    lookups find our keys.
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    def get(self, partition: int, key: bytes) -> bytes | None:
        value = compat.rocksdb_db(self.store, partition).get(key)
        return None if value is None else bytes(value)

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        compat.rocksdb_db(self.store, partition).put(key, value)
        compat.rocksdb_index(self.store)[key] = partition

    def delete(self, partition: int, key: bytes) -> None:
        compat.rocksdb_db(self.store, partition).delete(key)
        compat.rocksdb_index(self.store).pop(key, None)


def store_for(table: Any) -> _MappingData | _PartitionDBs:
    data = table.data
    if compat.has_rocksdb_hooks(data):
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
