"""Engine state must never be written through a store that picks the partition itself."""

from __future__ import annotations

from typing import Any

import pytest

from stream.worker.stores import store_for


class _Table:
    def __init__(self, data: Any) -> None:
        self.data = data


def test_an_unknown_rocksdb_store_is_refused_with_the_setting_named() -> None:
    rocks = type("Store", (), {"__module__": "faust.stores.rocksdb"})()
    with pytest.raises(RuntimeError, match="LLMWATCH_STORE"):
        store_for(_Table(rocks))


def test_a_plain_mapping_store_is_used_as_a_mapping() -> None:
    store = store_for(_Table({}))
    store.put(3, b"k", b"v")
    assert store.get(3, b"k") == b"v"
    store.delete(3, b"k")
    assert store.get(3, b"k") is None
