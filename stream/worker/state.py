"""Engine snapshots in a changelog-backed Faust table, one key per source partition.

Faust's ``table[key] = value`` needs a current stream event to pick the changelog
partition, and the batch data plane (``stream.worker.consumer``) has none. We know the partition
ourselves, so a save writes the local store and sends the changelog record to
that same partition explicitly: the worker that owns source partition N recovers
changelog partition N, and with it exactly the engines it needs.

The rocksdb store keeps one database per partition and picks it from the current
event too: writes from a timer or a rebalance handler fail (no event), and reads in
an agent go to the partition of whichever event the batch ended on. So with rocksdb
every read and write names the partition's database itself (``stream.worker.stores``).

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
import logging
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from stream.worker.stores import store_for

# (changelog partition, key, value or None for a tombstone)
# Returns the send's future (Faust's FutureMessage), or None where nothing confirms it.
ChangelogSend = Callable[[int, bytes, bytes | None], Any]
KEY_PREFIX = "engine-"
# Below Kafka's default 1 MB message limit with room for the record overhead.
CHUNK_BYTES = 256 * 1024
log = logging.getLogger("llmwatch.worker")


def state_key(partition: int) -> bytes:
    return f"{KEY_PREFIX}{partition}".encode()


def _chunk_key(partition: int, generation: int, index: int) -> bytes:
    return f"{KEY_PREFIX}{partition}@{generation}#{index}".encode()


class Unloadable(Exception):
    """One saved generation that cannot be used; ``reason`` is a metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Loaded:
    """The newest saved snapshot of a partition that could be used, and what it covers.

    ``offsets`` are trusted only because ``snapshot`` loaded: with no loadable
    generation they are empty, and the events after the committed offset are read
    again into a fresh engine rather than skipped.
    """

    snapshot: bytes | None
    offsets: dict[str, int]
    generation: int | None = None
    failures: tuple[str, ...] = ()  # why newer generations were passed over


class EngineStateTable:
    """Engine snapshots in a Faust ``Table(key_type=bytes, value_type=bytes)``.

    A snapshot is zlib-compressed (detector state is mostly zeros) and split into
    chunks under generation-numbered keys; the manifest under ``engine-N`` is written
    last and names the generation, its chunk count and digest, and the same for the
    generation before it. Two complete generations are kept (the one before those is
    deleted once the new manifest is out), and ``Progress`` commits offsets only as
    far as the older one covers: a newest generation found torn or corrupt at load
    falls back to the previous one, and the consumer re-reads what it lacks.
    ``check(partition, snapshot)`` (the engine's own restore) rejects a snapshot that
    passes the digest but cannot be read. Every generation passed over is logged at
    ERROR and reported to ``on_failure(partition, reason)``.
    """

    def __init__(
        self,
        table: Any,
        chunk_bytes: int = CHUNK_BYTES,
        send: ChangelogSend | None = None,
        *,
        check: Callable[[int, bytes], object] | None = None,
        on_failure: Callable[[int, str], None] | None = None,
    ) -> None:
        self.table = table
        self.chunk_bytes = int(chunk_bytes)
        # Default: Faust's buffered send_changelog; tests record the records instead.
        self._send = send if send is not None else self._send_changelog
        self._store = store_for(table)
        self.check = check
        self.on_failure = on_failure
        self._resolved: dict[int, Loaded] = {}
        self.failures: dict[int, list[str]] = {}  # partition -> what went wrong (/healthz)
        self._unconfirmed: dict[int, list[Any]] = {}  # partition -> sends not yet on the broker

    def _manifest(self, partition: int) -> dict[str, Any] | None:
        raw = self._store.get(partition, state_key(partition))
        if raw is None:
            return None
        try:
            value = orjson.loads(raw)
            if not isinstance(value, dict):
                raise TypeError(f"a JSON {type(value).__name__}, not an object")
            int(value["generation"]), int(value["chunks"]), str(value["sha256"])
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
            raise Unloadable("manifest", f"manifest unreadable ({type(exc).__name__})") from exc
        return value

    def _read(self, partition: int, man: Mapping[str, Any]) -> bytes:
        gen = int(man["generation"])
        parts: list[bytes] = []
        for i in range(int(man["chunks"])):
            chunk = self._store.get(partition, _chunk_key(partition, gen, i))
            if chunk is None:
                raise Unloadable("chunk_missing", f"generation {gen} chunk {i} missing")
            parts.append(bytes(chunk))
        blob = b"".join(parts)
        if hashlib.sha256(blob).hexdigest() != man["sha256"]:
            raise Unloadable("digest", f"generation {gen} digest mismatch")
        try:
            snapshot = zlib.decompress(blob)
        except zlib.error as exc:
            raise Unloadable("decompress", f"generation {gen}: {exc}") from exc
        if self.check is not None:
            try:
                self.check(partition, snapshot)
            except Exception as exc:
                detail = f"generation {gen}: {type(exc).__name__}: {str(exc)[:200]}"
                raise Unloadable("engine", detail) from exc
        return snapshot

    def resolve(self, partition: int) -> Loaded:
        """The newest usable generation (cached until the next save or ``forget``)."""
        got = self._resolved.get(partition)
        if got is None:
            got = self._resolved[partition] = self._resolve(partition)
        return got

    def _resolve(self, partition: int) -> Loaded:
        failures: list[str] = []
        try:
            man = self._manifest(partition)
        except Unloadable as exc:
            self._failed(partition, exc, failures, fallback=None)
            return Loaded(None, {}, None, tuple(failures))
        if man is None:
            return Loaded(None, {})
        candidates = [man]
        if isinstance(man.get("previous"), dict):
            candidates.append(man["previous"])
        for i, cand in enumerate(candidates):
            try:
                snapshot = self._read(partition, cand)
            except Unloadable as exc:
                nxt = candidates[i + 1] if i + 1 < len(candidates) else None
                self._failed(partition, exc, failures, fallback=nxt)
                continue
            offsets = {str(t): int(o) for t, o in cand.get("offsets", {}).items()}
            return Loaded(snapshot, offsets, int(cand["generation"]), tuple(failures))
        return Loaded(None, {}, None, tuple(failures))

    def _failed(
        self,
        partition: int,
        exc: Unloadable,
        failures: list[str],
        fallback: Mapping[str, Any] | None,
    ) -> None:
        failures.append(str(exc))
        self.failures.setdefault(partition, []).append(str(exc))
        if fallback is not None:
            then = (
                f"falling back to generation {fallback['generation']} and re-reading the "
                f"events after its offsets {dict(fallback.get('offsets', {}))}"
            )
        else:
            then = (
                "no loadable snapshot left: starting a fresh engine and trusting no saved "
                "offsets (events after the committed offset are read again; what the lost "
                "state had learned is gone)"
            )
        log.error("partition %d: saved engine state unusable (%s); %s", partition, exc, then)
        if self.on_failure is not None:
            self.on_failure(partition, exc.reason)

    def load(self, partition: int) -> bytes | None:
        return self.resolve(partition).snapshot

    def trusted_offsets(self, partition: int) -> dict[str, int]:
        """Per source topic, the last offset the newest *loadable* snapshot has seen."""
        return dict(self.resolve(partition).offsets)

    def offsets(self, partition: int) -> dict[str, int]:
        """What the manifest claims, unverified and never raising (for display)."""
        try:
            man = self._manifest(partition)
        except Unloadable:
            return {}
        if man is None:
            return {}
        return {str(t): int(o) for t, o in man.get("offsets", {}).items()}

    def forget(self, partition: int) -> None:
        """Partition revoked: resolve it afresh (after recovery) when it comes back."""
        self._resolved.pop(partition, None)

    def save(
        self, partition: int, snapshot: bytes, offsets: Mapping[str, int] | None = None
    ) -> None:
        try:
            old = self._manifest(partition)
        except Unloadable:
            old = None  # nothing trustworthy to keep as the previous generation
        gen = int(old["generation"]) + 1 if old is not None else 0
        keep, drop = self._kept_and_dropped(partition, old)
        blob = zlib.compress(snapshot, 1)
        step = self.chunk_bytes
        chunks = [blob[i : i + step] for i in range(0, len(blob), step)] or [b""]
        for i, chunk in enumerate(chunks):
            self._put(partition, _chunk_key(partition, gen, i), chunk)
        manifest: dict[str, Any] = {
            "generation": gen,
            "chunks": len(chunks),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "raw_bytes": len(snapshot),
            "offsets": dict(offsets or {}),
        }
        if keep is not None:
            fields = ("generation", "chunks", "sha256", "offsets")
            manifest["previous"] = {k: keep[k] for k in fields if k in keep}
        self._put(partition, state_key(partition), orjson.dumps(manifest))
        for gone in drop:
            for i in range(int(gone["chunks"])):
                self._delete(partition, _chunk_key(partition, int(gone["generation"]), i))
        self._resolved.pop(partition, None)

    def _kept_and_dropped(
        self, partition: int, old: dict[str, Any] | None
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """Which generation a new save keeps as its previous, and which ones it deletes.

        Normally the current newest is kept and the one before it goes. After a
        fallback (the newest failed to load) the generation that did load is kept and
        the unusable newest goes: keeping the torn one would delete the only good one.
        """
        if old is None:
            return None, []
        previous = old.get("previous")
        previous = previous if isinstance(previous, dict) else None
        loaded = self._resolved.get(partition)
        if loaded is None or not loaded.failures or loaded.generation == int(old["generation"]):
            return old, [previous] if previous is not None else []
        if previous is not None and loaded.generation == int(previous["generation"]):
            return previous, [old]
        return None, [old] + ([previous] if previous is not None else [])  # neither loaded

    def _put(self, partition: int, key: bytes, value: bytes) -> None:
        self._store.put(partition, key, value)
        self._track(partition, self._send(partition, key, value))

    def _delete(self, partition: int, key: bytes) -> None:
        self._store.delete(partition, key)
        self._track(partition, self._send(partition, key, None))

    def _track(self, partition: int, sent: Any) -> None:
        if sent is None or not hasattr(sent, "done"):
            return
        waiting = [f for f in self._unconfirmed.get(partition, ()) if not f.done()]
        waiting.append(sent)
        self._unconfirmed[partition] = waiting

    def unconfirmed(self, partition: int) -> list[Any]:
        """The partition's changelog sends the broker has not confirmed yet.

        Faust's commit flushes its producer buffer for at most 0.1 s without progress,
        so a commit does not prove the snapshots saved before it reached the broker:
        an ack waits for these instead (``BatchConsumer.ack_through``)."""
        waiting = [f for f in self._unconfirmed.get(partition, ()) if not f.done()]
        self._unconfirmed[partition] = waiting
        return list(waiting)

    def _send_changelog(self, partition: int, key: bytes, value: bytes | None) -> Any:
        if value is None:
            return self.table.send_changelog(partition, key, None, value_serializer="raw")
        return self.table.send_changelog(partition, key, value)


Ack = Callable[[str, int, int], None]  # (topic, partition, last offset done)


def _no_ack(topic: str, partition: int, offset: int) -> None:
    pass


class Progress:
    """Per source partition: offsets reflected in the engine, and offsets awaiting an ack.

    Offsets are keyed (topic, partition). After an assignment the first batch of a
    partition seeds them from the newest snapshot that loads (``trusted_offsets``),
    so re-delivered events are dropped and nothing after a loadable snapshot is
    skipped. An offset is acked (``ack``: Faust may commit past it) only once the
    *older* of the two kept snapshots covers it: should the newest one turn out
    unloadable, the consumer still resumes at or before the one it falls back to.
    """

    def __init__(self, state: EngineStateTable, ack: Ack = _no_ack) -> None:
        self.state = state
        self.ack = ack
        self.done: dict[tuple[str, int], int] = {}
        self._saved: dict[tuple[str, int], int] = {}  # covered by the newest snapshot
        self._safe: dict[tuple[str, int], int] = {}  # covered by the older one too
        self._acked: dict[tuple[str, int], int] = {}
        self._seeded: set[int] = set()

    def _seed(self, partition: int) -> None:
        for t, off in self.state.trusted_offsets(partition).items():
            key = (t, partition)
            self.done[key] = max(off, self.done.get(key, -1))
            # Loaded just now, so it is safe to commit: it stays kept after the next save.
            self._saved[key] = self._safe[key] = off
        self._seeded.add(partition)

    def fresh(self, topic: str, partition: int, offsets: Sequence[int]) -> int:
        """How many leading ``offsets`` (ascending) the engine has already seen."""
        if partition not in self._seeded:
            self._seed(partition)
        key = (topic, partition)
        seen = bisect.bisect_right(offsets, self.done.get(key, -1))
        if seen:
            self._ack(key, min(offsets[seen - 1], self._safe.get(key, -1)))
        return seen

    def _ack(self, key: tuple[str, int], offset: int) -> None:
        if offset > self._acked.get(key, -1):
            self._acked[key] = offset
            self.ack(key[0], key[1], offset)

    def advance(self, topic: str, partition: int, offset: int) -> None:
        self.done[(topic, partition)] = offset

    def offsets(self, partition: int) -> dict[str, int]:
        return {t: off for (t, p), off in self.done.items() if p == partition}

    def seen(self, partitions: Iterable[int]) -> dict[tuple[str, int], int]:
        """Last offset reflected in state per (topic, partition), for ``partitions``:
        in memory once a batch arrived, else what the saved manifest says."""
        out: dict[tuple[str, int], int] = {}
        for p in partitions:
            if p not in self._seeded:  # read only: seeding waits for recovery + a batch
                out.update({(t, p): off for t, off in self.state.offsets(p).items()})
        out.update({k: v for k, v in self.done.items() if k[1] in partitions})
        return out

    def skipped(self, topic: str, partition: int, first: int) -> int:
        """Offsets before ``first`` this worker will never read: a gap after the last
        offset in state. Source topics are not compacted, so a gap means retention
        deleted them before they were read (an offset-out-of-range reset)."""
        floor = self.done.get((topic, partition))
        return 0 if floor is None else max(0, first - floor - 1)

    def release(self, partitions: Iterable[int]) -> None:
        """The partitions' snapshots were just saved (``offsets`` of each went into it):
        the snapshot before becomes the older kept one, and what it covers is acked."""
        for p in partitions:
            for key, off in self.done.items():
                if key[1] != p:
                    continue
                before = self._saved.get(key)
                self._saved[key] = off
                if before is not None:
                    self._safe[key] = before
                    self._ack(key, before)

    def held(self) -> list[int]:
        """Partitions with processed events not acked yet."""
        return sorted({p for (t, p), off in self.done.items() if off > self._acked.get((t, p), -1)})

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions revoked: their un-acked events belong to the next owner now."""
        for p in partitions:
            self._seeded.discard(p)
            self.state.forget(p)
            for key in [k for k in self.done if k[1] == p]:
                del self.done[key]
                self._saved.pop(key, None)
                self._safe.pop(key, None)
                self._acked.pop(key, None)
