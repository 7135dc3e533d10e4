"""Batch decoding of raw topic messages into models or columns, with rejects kept.

Nothing here raises on message content: every message that cannot be used becomes
a ``Reject`` carrying the raw bytes and a reason a person can act on, so a
dead-letter topic can hold it. ``decode_models`` is the reference; ``decode_columns``
is the hot path and must agree with ``decode_models`` + ``Columns.from_rows``
exactly, which it does by handing every row it is not sure of to the same
per-message function the reference uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from .brief import brief, brief_exception, capped
from .columns import COLUMNS_BY_KIND, Columns
from .deadletters import DEAD_LETTER_MAX_RAW_BYTES, build_dead_letter
from .models import WIRE_MODELS, DeadLetter, WireModel

DEFAULT_MAX_BYTES = 65536
DEFAULT_MAX_FUTURE_SKEW_S = 300.0
# No wire model nests deeper than 2 (Alert's bounds, a metric's labels); a message that
# fails validation with a value nested deeper than this gets that reason (see _too_deep).
MAX_NESTING = 32
_NESTED = frozenset({list, dict})
_REASON_LIMIT = 1000
_LOCATION_LIMIT = 256


@dataclass(frozen=True, slots=True)
class Reject:
    """One message that was not accepted, and why."""

    index: int  # position in the input batch
    raw: bytes
    reason: str
    location: str  # first error's field path, or "$" for the whole message
    # The exception's type name when decoding this message raised (a poison message the
    # decoder isolated, not an ordinary invalid one); None otherwise.
    exception: str | None = None


@dataclass(slots=True)
class DecodePaths:
    """Messages by the way ``decode_columns`` decoded them, added up over calls.

    ``columnar``: parsed straight to columns (msgspec). ``per_message``: a batch the
    columnar parser cannot vouch for (an unknown field, a newline inside a message,
    invalid JSON) goes one message at a time, about 1.5x slower. ``reference``: rows
    the fast checks would not vouch for (e.g. an integer too big for a float), checked
    by the pydantic models, as slow again as that.
    """

    columnar: int = 0
    per_message: int = 0
    reference: int = 0
    # Messages of batches whose columnar decoding raised, decoded one at a time by the
    # reference instead (counted in per_message and reference too). Always 0 unless
    # the columnar code has a bug: the fuzz tests hold it to 0.
    fallback: int = 0

    def add(self, other: DecodePaths) -> None:
        self.columnar += other.columnar
        self.per_message += other.per_message
        self.reference += other.reference
        self.fallback += other.fallback


def _as_bytes(raw: Any) -> bytes | None:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, bytearray | memoryview):
        return bytes(raw)
    return None


def _describe(exc: ValidationError) -> tuple[str, str]:
    """(reason, location) from the first error; the count of the rest is appended."""
    errors = exc.errors(include_url=False, include_context=False)
    if not errors:  # pragma: no cover - pydantic always reports at least one
        return "invalid message", "$"
    first = errors[0]
    location = ".".join(str(part) for part in first["loc"]) or "$"
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "value_error":
        # Our own messages name the field already (and quote the input when it matters).
        reason = msg if location in msg else f"{location}: {msg}"
    elif first["type"] == "missing":
        reason = f"{location}: required field is missing"
    else:
        reason = f"{location}: {msg}, got {brief(first['input'])}"
    if len(errors) > 1:
        reason += f" (and {len(errors) - 1} more)"
    # A location can hold message content (a label's key), so both are capped.
    return capped(reason, _REASON_LIMIT), capped(location, _LOCATION_LIMIT)


class _Context:
    """Decode settings shared by every message of one batch."""

    __slots__ = ("kind", "max_bytes", "validation")

    def __init__(self, kind: str | None, now: float, max_bytes: int, skew: float) -> None:
        if kind is not None and kind not in WIRE_MODELS:
            raise ValueError(f"unknown kind {kind!r}; known: {sorted(WIRE_MODELS)}")
        self.kind = kind
        self.max_bytes = max_bytes
        self.validation: dict[str, float] = {"now": float(now), "max_future_skew_s": float(skew)}


def _load(index: int, raw: Any, ctx: _Context) -> tuple[bytes, Any] | Reject:
    """Size check and JSON parse; the parsed object or a whole-message Reject."""
    data = _as_bytes(raw)
    if data is None:
        return Reject(
            index, brief(raw).encode(), f"message is {type(raw).__name__}, not bytes", "$"
        )
    if len(data) > ctx.max_bytes:
        return Reject(
            index, data, f"message is {len(data)} bytes, over the limit of {ctx.max_bytes}", "$"
        )
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return Reject(index, data, f"not valid JSON: {exc}", "$")
    if not isinstance(obj, dict):
        name = "null" if obj is None else type(obj).__name__
        return Reject(index, data, f"expected a JSON object, got {name}", "$")
    return data, obj


def _validate(index: int, data: bytes, obj: dict[str, Any], ctx: _Context) -> WireModel | Reject:
    """The reference check of one parsed message (shared by both decoders)."""
    declared = obj.get("kind")
    if ctx.kind is None:
        if "kind" not in obj:
            return Reject(index, data, "kind: required field is missing", "kind")
        if not isinstance(declared, str) or declared not in WIRE_MODELS:
            known = ", ".join(sorted(WIRE_MODELS))
            return Reject(
                index, data, f"kind: unknown kind {brief(declared)}; known: {known}", "kind"
            )
        model = WIRE_MODELS[declared]
    else:
        if "kind" in obj and declared != ctx.kind:
            return Reject(
                index,
                data,
                f"kind: {brief(declared)} does not match expected {ctx.kind!r}",
                "kind",
            )
        model = WIRE_MODELS[ctx.kind]
    try:
        return model.model_validate(obj, context=ctx.validation)
    except Exception as exc:
        # No wire field takes deep nesting, so only a failure needs the depth check (a
        # success costs nothing), and it comes first: see _too_deep.
        deep = _too_deep(obj, model)
        if deep is not None:
            return Reject(index, data, f"{deep}: nested more than {MAX_NESTING} levels deep", deep)
        if not isinstance(exc, ValidationError):
            raise  # _one/_checked make it this message's reject
        reason, location = _describe(exc)
        return Reject(index, data, reason, location)


def _too_deep(obj: dict[str, Any], model: type[WireModel]) -> str | None:
    """The first known field whose value nests deeper than any wire model does, or None
    (unknown fields are ignored, as the models ignore them).

    Pydantic's errors (and Enum's) repr() the input, which raises RecursionError or
    not depending on the caller's stack depth: without this, one message could get
    different verdicts in different places.
    """
    if _NESTED.isdisjoint(map(type, obj.values())):
        return None
    known = model.model_fields
    for key, value in obj.items():
        if type(value) not in _NESTED or key not in known:
            continue
        level = [value]
        for _ in range(MAX_NESTING):
            level = [
                v
                for c in level
                for v in (c.values() if type(c) is dict else c)
                if type(v) in _NESTED
            ]
            if not level:
                break
        else:
            return str(key)
    return None


def _isolated(index: int, raw: Any, exc: Exception) -> Reject:
    """The reject for a message whose decoding raised: whatever one message does to the
    decoder (RecursionError, a validator's bug, MemoryError on a huge string), it costs
    that message only, never its batch."""
    data = _as_bytes(raw)
    if data is None:
        data = brief(raw).encode()
    return Reject(index, data, f"invalid message: {brief_exception(exc)}", "$", type(exc).__name__)


def _one(index: int, raw: Any, ctx: _Context) -> WireModel | Reject:
    """The reference decision on one message; never raises."""
    try:
        loaded = _load(index, raw, ctx)
        return loaded if isinstance(loaded, Reject) else _validate(index, *loaded, ctx)
    except Exception as exc:  # see _isolated
        return _isolated(index, raw, exc)


def _checked(index: int, data: bytes, obj: dict[str, Any], ctx: _Context) -> WireModel | Reject:
    """``_validate`` on an object parsed already; never raises."""
    try:
        return _validate(index, data, obj, ctx)
    except Exception as exc:  # see _isolated
        return _isolated(index, data, exc)


def decode_models(
    raws: Sequence[bytes],
    *,
    kind: str | None = None,
    now: float,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S,
) -> tuple[list[WireModel], list[Reject]]:
    """Decode and validate each message; good ones in input order, bad ones as Rejects.

    ``kind=None`` dispatches on each payload's ``kind``; a given kind forces that model
    (a payload ``kind`` that disagrees is rejected). ``now`` (epoch seconds) bounds how
    far in the future a timestamp may be.
    """
    ctx = _Context(kind, now, max_bytes, max_future_skew_s)
    good: list[WireModel] = []
    bad: list[Reject] = []
    for index, raw in enumerate(raws):
        result = _one(index, raw, ctx)
        (bad if isinstance(result, Reject) else good).append(result)  # type: ignore[arg-type]
    return good, bad


def _plain(batch: list[Any], max_bytes: int) -> bool:
    """Every message is bytes within the size limit: whole-batch parsing may be tried."""
    return bool(batch) and set(map(type, batch)) == {bytes} and max(map(len, batch)) <= max_bytes


def _load_batch(
    raws: Sequence[bytes], ctx: _Context, rejects: list[Reject]
) -> tuple[list[bytes], list[dict[str, Any]], list[int]]:
    """Parse a batch; whole-message failures go to ``rejects``, the rest come back."""
    batch = list(raws)
    if _plain(batch, ctx.max_bytes):
        try:
            objs = list(map(orjson.loads, batch))
        except orjson.JSONDecodeError:
            objs = []
        if len(objs) == len(batch) and set(map(type, objs)) == {dict}:
            return batch, objs, list(range(len(batch)))
    datas: list[bytes] = []
    dicts: list[dict[str, Any]] = []
    where: list[int] = []
    for index, raw in enumerate(batch):
        try:
            loaded = _load(index, raw, ctx)
        except Exception as exc:  # see _isolated
            loaded = _isolated(index, raw, exc)
        if isinstance(loaded, Reject):
            rejects.append(loaded)
        else:
            datas.append(loaded[0])
            dicts.append(loaded[1])
            where.append(index)
    return datas, dicts, where


def decode_columns(
    raws: Sequence[bytes],
    *,
    kind: str,
    now: float,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S,
    paths: DecodePaths | None = None,
) -> tuple[Columns, list[Reject]]:
    """The hot path: one batch of one kind straight to columns, no model per event.

    Same accept/reject decisions, reasons and values as ``decode_models`` followed by
    ``COLUMNS_BY_KIND[kind].from_rows``. ``paths``, if given, counts how the batch's
    messages were decoded. Never raises on message content.
    """
    if kind not in COLUMNS_BY_KIND:
        raise ValueError(f"no columnar form for kind {kind!r}; known: {sorted(COLUMNS_BY_KIND)}")
    ctx = _Context(kind, now, max_bytes, max_future_skew_s)
    batch = list(raws)
    counts = DecodePaths()
    try:
        columns, rejects = _batch_columns(batch, ctx, counts)
    except Exception:  # a batch-level bug must cost no message
        counts = DecodePaths(per_message=len(batch), reference=len(batch), fallback=len(batch))
        columns, rejects = _columns_one_by_one(batch, ctx)
    if paths is not None:
        paths.add(counts)
    return columns, rejects


def _batch_columns(
    batch: list[Any], ctx: _Context, counts: DecodePaths
) -> tuple[Columns, list[Reject]]:
    from ._fast import FAST_DECODERS, fast_rows
    from ._fast_rows import _Rows

    assert ctx.kind is not None
    cls = COLUMNS_BY_KIND[ctx.kind]
    rejects: list[Reject] = []
    rows = fast_rows(batch, ctx.kind) if _plain(batch, ctx.max_bytes) else None
    objs: list[dict[str, Any]] | None
    if rows is not None:
        datas, objs, where = batch, None, list(range(len(batch)))
    else:
        datas, objs, where = _load_batch(batch, ctx, rejects)
        rows = _Rows(objs)
    columns, unsure = FAST_DECODERS[ctx.kind](
        rows, ctx.validation["now"], ctx.validation["max_future_skew_s"]
    )
    if objs is None:
        counts.columnar += len(batch)
    else:
        counts.per_message += len(batch)
    counts.reference += int(unsure.sum())
    if not unsure.any():
        rejects.sort(key=lambda r: r.index)
        return columns, rejects

    # Rows the fast path would not vouch for: the reference decides, in input order.
    sure = np.flatnonzero(~unsure)
    parts = [columns.take(sure)]
    order = [np.asarray(where, dtype=np.int64)[sure]]
    rescued_models: list[WireModel] = []
    rescued_at: list[int] = []
    for row in np.flatnonzero(unsure).tolist():
        # Parsed by msgspec: the reference parses its own (orjson may refuse it).
        result = (
            _one(where[row], datas[row], ctx)
            if objs is None
            else _checked(where[row], datas[row], objs[row], ctx)
        )
        if isinstance(result, Reject):
            rejects.append(result)
        else:
            rescued_models.append(result)
            rescued_at.append(where[row])
    if rescued_models:
        parts.append(cls.from_rows(rescued_models))
        order.append(np.asarray(rescued_at, dtype=np.int64))
    merged = cls.concat(parts)
    if rescued_models:
        merged = merged.take(np.argsort(np.concatenate(order), kind="stable"))
    rejects.sort(key=lambda r: r.index)
    return merged, rejects


def _columns_one_by_one(batch: list[Any], ctx: _Context) -> tuple[Columns, list[Reject]]:
    """The reference on every message alone, for a batch the columnar code raised on:
    slow, but no message is lost to another one's fault."""
    assert ctx.kind is not None
    cls = COLUMNS_BY_KIND[ctx.kind]
    parts: list[Columns] = []
    rejects: list[Reject] = []
    for index, raw in enumerate(batch):
        result = _one(index, raw, ctx)
        if isinstance(result, Reject):
            rejects.append(result)
            continue
        try:
            parts.append(cls.from_rows([result]))
        except Exception as exc:  # see _isolated
            rejects.append(_isolated(index, raw, exc))
    return cls.concat(parts) if parts else cls.from_rows([]), rejects


def to_dead_letter(
    reject: Reject,
    *,
    topic: str,
    now: float,
    partition: int | None = None,
    offset: int | None = None,
    max_raw_bytes: int = DEAD_LETTER_MAX_RAW_BYTES,
) -> DeadLetter:
    """The dead-letter record for a reject (``schemas.deadletters``: the raw bytes
    base64-encoded, only their head past ``max_raw_bytes``, with size and SHA-256)."""
    return build_dead_letter(
        reject.raw,
        topic=topic,
        reason=reject.reason,
        location=reject.location,
        now=now,
        partition=partition,
        offset=offset,
        max_raw_bytes=max_raw_bytes,
    )
