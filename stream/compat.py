"""Every private Faust and aiokafka attribute llmwatch relies on, in one place.

The worker reaches past the public APIs where they have no way to do what it needs
(whole fetches as raw bytes, commits by offset, per-partition RocksDB access, a stuck
table recovery, Kafka 0.9 offsets). Each such hook is listed in ``HOOKS`` and is used
only through the functions below; ``check_hooks`` runs when a worker app is created
and refuses to start, naming the package, its installed version and the hook, when an
upgrade removed one -- rather than the worker misbehaving silently later.
"""

from __future__ import annotations

import importlib
import inspect
import types
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any


@dataclass(frozen=True)
class Hook:
    package: str  # the distribution, as pip names it
    owner: str  # "module:Class"
    attr: str
    used_for: str
    instance: bool = False  # set in __init__ (looked for as ``self.<attr>`` in the source)
    when: str = "always"  # always | legacy (Kafka < 0.10.1) | rocksdb (LLMWATCH_STORE)
    # A method llmwatch overrides or calls: its parameters after self, as llmwatch
    # passes them. A renamed or added parameter is an incompatible upgrade too.
    params: tuple[str, ...] | None = None


_FAUST = "faust-streaming"
_AIOKAFKA = "aiokafka"
_CONSUMER = "faust.transport.consumer:Consumer"
_RECOVERY = "faust.tables.recovery:Recovery"
_AIOCONSUMER = "aiokafka.consumer.consumer:AIOKafkaConsumer"
_FETCHER = "aiokafka.consumer.fetcher:Fetcher"
_ROCKSDB = "faust.stores.rocksdb:Store"
HOOKS: tuple[Hook, ...] = (
    Hook(_FAUST, "faust.app.base:App", "_new_transport", "WorkerApp's batch transport", params=()),
    Hook(_FAUST, "faust.app.base:App", "_new_consumer", "diverting the source topics", params=()),
    Hook(
        _FAUST,
        "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread",
        "_create_worker_consumer",
        "the fetch wait and the Kafka 0.9 offsets on llmwatch's consumer",
        params=("transport",),
    ),
    Hook(
        _FAUST,
        "faust.transport.drivers.aiokafka:Consumer",
        "_new_consumer_thread",
        "BatchConsumer's thread",
        params=(),
    ),
    Hook(_FAUST, _CONSUMER, "_wait_next_records", "whole fetches", params=("timeout",)),
    Hook(_FAUST, _CONSUMER, "_filter_tps_with_pending_acks", "commits", params=("topics",)),
    Hook(_FAUST, _CONSUMER, "_new_offset", "committing by offset", params=("tp",)),
    Hook(_FAUST, _CONSUMER, "_read_offset", "read positions of diverted topics", True),
    Hook(_FAUST, _CONSUMER, "_paused_partitions", "SourceGuard's report", True),
    Hook(_FAUST, _RECOVERY, "_recovery_started_at", "RecoveryGuard"),
    Hook(_FAUST, _RECOVERY, "_active_events_received_at", "RecoveryGuard", True),
    Hook(_AIOKAFKA, _AIOCONSUMER, "_fetch_max_wait_ms", "the fetch wait", True),
    Hook(_AIOKAFKA, _AIOCONSUMER, "_fetcher", "Kafka 0.9 offsets", True, "legacy"),
    Hook(_AIOKAFKA, _AIOCONSUMER, "_request_timeout_ms", "Kafka 0.9 offsets", True, "legacy"),
    Hook(_AIOKAFKA, _FETCHER, "end_offsets", "Kafka 0.9 offsets", when="legacy"),
    Hook(_AIOKAFKA, _FETCHER, "beginning_offsets", "Kafka 0.9 offsets", when="legacy"),
    Hook(_FAUST, _ROCKSDB, "_db_for_partition", "engine state", when="rocksdb"),
    Hook(_FAUST, _ROCKSDB, "_key_index", "engine state", True, "rocksdb"),
)


class IncompatibleDependency(RuntimeError):
    """An installed Faust or aiokafka lacks a hook llmwatch needs."""


def installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _resolve(owner: str) -> type:
    module, _, name = owner.partition(":")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


def _present(hook: Hook) -> bool:
    try:
        cls = _resolve(hook.owner)
    except (ImportError, AttributeError):
        return False
    if hasattr(cls, hook.attr):
        return hook.params is None or _params(getattr(cls, hook.attr)) == hook.params
    if not hook.instance:
        return False
    needle = f"self.{hook.attr}"
    for klass in cls.__mro__:
        try:
            if needle in inspect.getsource(klass):
                return True
        except (OSError, TypeError):  # builtins, or no source shipped
            continue
    return False


def _params(method: Any) -> tuple[str, ...] | None:
    try:
        names = list(inspect.signature(method).parameters)
    except (TypeError, ValueError):
        return None
    return tuple(names[1:] if names[:1] == ["self"] else names)


def missing(conditions: Iterable[str] = ("always",), hooks: Iterable[Hook] = HOOKS) -> list[Hook]:
    wanted = set(conditions)
    return [h for h in hooks if h.when in wanted and not _present(h)]


def check_hooks(*, legacy: bool = False, rocksdb: bool = False) -> None:
    """Raise IncompatibleDependency naming every hook the installed versions lack."""
    conditions = ["always"] + (["legacy"] if legacy else []) + (["rocksdb"] if rocksdb else [])
    gone = missing(conditions)
    if not gone:
        return
    lines = [
        f"{h.package} {installed(h.package)}: {h.owner.replace(':', '.')}.{h.attr} is gone"
        + ("" if h.params is None else f" or no longer takes ({', '.join(h.params)})")
        + f" (llmwatch uses it for {h.used_for})"
        for h in gone
    ]
    raise IncompatibleDependency(
        "this llmwatch cannot run on the installed versions: "
        + "; ".join(lines)
        + ". Install the versions pinned in pyproject.toml, or update stream/compat.py."
    )


# --- The hooks, used only through these functions ---------------------------------


def set_fetch_wait(client: Any, wait_ms: int) -> None:
    """Faust hard-codes 1,500 ms; aiokafka reads this when it starts its fetcher."""
    client._fetch_max_wait_ms = int(wait_ms)


def mark_read(consumer: Any, tp: Any, offset: int) -> None:
    """Tell Faust's consumer a diverted partition was read up to ``offset``."""
    consumer._read_offset[tp] = offset


def forget_read(consumer: Any, tp: Any) -> None:
    consumer._read_offset.pop(tp, None)


def paused_partitions(consumer: Any) -> set[Any]:
    """The partitions Faust's consumer has paused (its fetches leave them out)."""
    return set(getattr(consumer, "_paused_partitions", ()) or ())


def recovery_started_at(recovery: Any) -> float | None:
    started: float | None = getattr(recovery, "_recovery_started_at", None)
    return started


def recovery_heard(recovery: Any) -> Any:
    """Changelog partitions recovery has had an event from (a mapping keyed by tp)."""
    return recovery._active_events_received_at


def rocksdb_db(store: Any, partition: int) -> Any:
    return store._db_for_partition(partition)


def rocksdb_index(store: Any) -> Any:
    return store._key_index


def has_rocksdb_hooks(store: Any) -> bool:
    return hasattr(store, "_db_for_partition") and hasattr(store, "_key_index")


async def _end_offsets(self: Any, partitions: Any) -> Any:
    return await self._fetcher.end_offsets(partitions, self._request_timeout_ms)


async def _beginning_offsets(self: Any, partitions: Any) -> Any:
    return await self._fetcher.beginning_offsets(partitions, self._request_timeout_ms)


def legacy_offsets(client: Any) -> None:
    """Let this one aiokafka consumer ask a 0.9 broker for offsets.

    aiokafka 0.12 refuses ``end_offsets``/``beginning_offsets`` on brokers <= 0.10.0
    although its fetcher speaks ListOffsets v0, and Faust's table recovery calls both.
    Bound on the instance: other consumers in the process keep aiokafka's own.
    """
    client.end_offsets = types.MethodType(_end_offsets, client)
    client.beginning_offsets = types.MethodType(_beginning_offsets, client)
