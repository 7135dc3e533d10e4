"""Columnar fast path: parsed JSON objects to Columns without a model per event.

Each message's fields are read out as lists (``load_fields``), and each kind's columns
are built from them by the extractors of ``schemas._fast_rows``: each field
type-checked as a set of types, converted with the same numpy constructors
``Columns.from_rows`` uses, and range-checked with array comparisons. A row is only
vouched for when every field has exactly the plain JSON type the model would take
unchanged and passes every rule; any other row is flagged ``unsure`` and the caller
sends it through the pydantic model, so both decoders agree by construction. The rules
here mirror ``schemas.models``: a change there needs the same change here (the
property test in tests/schemas catches a mismatch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import numpy as np

from ._fast_rows import _INT64_MAX, _MISSING, _UNSET, Bool, _obj, _Rows
from .columns import (
    FINISH_CODES,
    STATUS_CODES,
    Columns,
    FeedbackColumns,
    GpuColumns,
    InferenceColumns,
    MetricColumns,
    series_key,
)
from .labels import seed
from .models import WIRE_MODELS

# Messages parsed per step: one step's parsed objects are still in the CPU cache when
# their fields are read out, and a whole 5,000-message batch's are not (2x slower).
_STEP = 1024
_LINE_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {}
_FILLED: dict[str, frozenset[str]] = {}


def _line_decoder(kind: str) -> msgspec.json.Decoder[Any]:
    dec = _LINE_DECODERS.get(kind)
    if dec is None:
        # Every field of the model, untyped (values come out exactly as orjson gives
        # them; the extractors check types). Absent is None where the extractor reads
        # absent as None anyway (no pass to fill it in), else UNSET. Unknown fields fail
        # the step, which then goes the orjson way: msgspec skips an unknown field's
        # value with less checking than orjson parses it (1e400, a 400-digit integer).
        asked = _defaults_asked(kind)
        fields = [
            (n, Any, None if n in asked and asked[n] is None else _UNSET)
            for n in WIRE_MODELS[kind].model_fields
        ]
        struct = msgspec.defstruct(f"_{kind}_fields", fields, forbid_unknown_fields=True)
        dec = _LINE_DECODERS[kind] = msgspec.json.Decoder(struct)
        _FILLED[kind] = frozenset(n for n, _, d in fields if d is None)
    return dec


def _defaults_asked(kind: str) -> dict[str, Any]:
    """The default each field of ``kind`` is read with, from a dry run on no rows."""
    rows = _Rows([])
    rows.asked = {}
    _BUILDERS[kind](rows, 0.0, 0.0)
    return rows.asked


def fast_rows(raws: Sequence[bytes], kind: str) -> _Rows | None:
    """``load_fields`` as rows for the extractors, or None (see there)."""
    fields = load_fields(raws, kind)
    if fields is None:
        return None
    return _Rows(None, fields, _FILLED[kind])


def load_fields(raws: Sequence[bytes], kind: str) -> dict[str, list[Any]] | None:
    """Each field of every message as one list (``msgspec.UNSET`` where absent), or None
    when the batch needs the per-message path: a message that is not exactly one JSON
    object, an unknown field, or anything msgspec refuses.

    msgspec builds no dict per message and reads fields out in C: 2x faster than
    ``orjson.loads`` then ``dict.get`` per field. Values (types included) are those
    orjson gives, except integers beyond 64 bits, which stay ints (orjson: floats, or
    an error past 1e308); the extractors send any such row to the reference.

    Each message is decoded on its own, never as lines of a joined buffer: a line
    decoder sees no message boundaries, so two documents in one message and an empty
    or blank message next to it would merge into the right count of rows credited to
    the wrong messages. ``decode`` refuses trailing content and empty input exactly as
    ``orjson.loads`` does, at the same speed as ``decode_lines``.
    """
    dec = _line_decoder(kind)
    names: tuple[str, ...] = dec.type.__struct_fields__
    columns: list[list[Any]] = [[] for _ in names]
    astuple = msgspec.structs.astuple
    decode = dec.decode
    for start in range(0, len(raws), _STEP):
        part = raws[start : start + _STEP]
        try:
            objs = list(map(decode, part))
        except (msgspec.DecodeError, RecursionError):
            return None
        for column, values in zip(columns, zip(*map(astuple, objs), strict=True), strict=True):
            column.extend(values)
    return dict(zip(names, columns, strict=True))


def _inference(rows: _Rows, now: float, skew: float) -> Columns:
    rows.header("inference")
    # Validated but not a column; rows with an embedding are rare and go to the model.
    rows.text("request_id", 1, 128)
    rows.absent("embedding")
    latency = rows.number("latency_ms", 0.0)
    ttft = rows.number("ttft_ms", 0.0, optional=True)
    queue = rows.number("queue_ms", 0.0, optional=True)
    rows.unsure |= (ttft > latency) | (queue > latency)
    return InferenceColumns(
        ts=rows.timestamp("ts", now, skew),
        gateway=rows.label("gateway", 1, 256),
        model=rows.label("model", 1, 256),
        model_version=rows.label("model_version", 1, 256),
        route=rows.label("route", 1, 256, default="/v1/chat/completions"),
        tenant=rows.opt_label("tenant", 256, keep=False),
        host=rows.opt_label("host", 256),
        status=rows.required_choice("status", STATUS_CODES),
        http_status=rows.opt_integer("http_status", 100, 599),
        error_type=rows.opt_label("error_type", 256, keep=False),
        latency_ms=latency,
        ttft_ms=ttft,
        tpot_ms=rows.number("tpot_ms", 0.0, optional=True),
        queue_ms=queue,
        prompt_tokens=rows.count_as_float("prompt_tokens"),
        completion_tokens=rows.count_as_float("completion_tokens"),
        finish_reason=rows.choice("finish_reason", FINISH_CODES, "unknown"),
        feedback_score=rows.number("feedback_score", -1.0, 1.0, optional=True),
        refusal=rows.opt_flag("refusal"),
        toxicity=rows.number("toxicity", 0.0, 1.0, optional=True),
        embedding_norm=rows.number("embedding_norm", 0.0, optional=True),
    )


def _gpu(rows: _Rows, now: float, skew: float) -> Columns:
    rows.header("gpu")
    used = rows.number("mem_used_mib", 0.0)
    total = rows.number("mem_total_mib", 0.0, lo_open=True)
    rows.unsure |= used > total
    return GpuColumns(
        ts=rows.timestamp("ts", now, skew),
        host=rows.label("host", 1, 256, keep=False),
        gpu_index=rows.integer("gpu_index", 0, 1023),
        gpu_uuid=rows.label("gpu_uuid", 1, 256, keep=False),
        sm_util_pct=rows.number("sm_util_pct", 0.0, 100.0),
        mem_util_pct=rows.number("mem_util_pct", 0.0, 100.0),
        mem_used_mib=used,
        mem_total_mib=total,
        temp_c=rows.number("temp_c", -50.0, 150.0),
        power_w=rows.number("power_w", 0.0),
        power_limit_w=rows.number("power_limit_w", 0.0),
        sm_clock_mhz=rows.number("sm_clock_mhz", 0.0),
        clocks_event_reasons=rows.integer(
            "clocks_event_reasons", 0, 2**64 - 1, default=0, dtype=np.uint64
        ),
        xid=rows.opt_integer("xid", 0, _INT64_MAX),
        ecc_sbe_total=rows.integer("ecc_sbe_total", 0, _INT64_MAX, default=0),
        ecc_dbe_total=rows.integer("ecc_dbe_total", 0, _INT64_MAX, default=0),
        pcie_replay_total=rows.integer("pcie_replay_total", 0, _INT64_MAX, default=0),
    )


def _labels_ok(value: Any) -> bool:
    return (
        type(value) is dict
        and len(value) <= 32
        and all(type(k) is str and type(v) is str for k, v in value.items())
    )


def _metric(rows: _Rows, now: float, skew: float) -> Columns:
    rows.header("metric")
    names = rows.text("name", 1, 256)
    raw_labels = rows._get("labels", _MISSING)
    labels = [{} if v is _MISSING else v for v in raw_labels]
    labels = rows._clean(labels, _labels_ok, {})
    copies = [dict(v) for v in labels]
    return MetricColumns(
        ts=rows.timestamp("ts", now, skew),
        name=names,
        series=_obj([series_key(n, lab) for n, lab in zip(names.tolist(), copies, strict=True)]),
        labels=_obj(copies),
        value=rows.number("value"),
    )


def _feedback(rows: _Rows, now: float, skew: float) -> Columns:
    rows.header("feedback")
    return FeedbackColumns(
        ts=rows.timestamp("ts", now, skew),
        request_id=rows.text("request_id", 1, 128),
        model=rows.label("model", 1, 256),
        model_version=rows.label("model_version", 1, 256),
        score=rows.number("score", -1.0, 1.0),
        label=rows.opt_text("label", 64),
    )


def _run(build: Callable[[_Rows, float, float], Columns]) -> Callable[..., tuple[Columns, Bool]]:
    def decode(rows: _Rows, now: float, skew: float) -> tuple[Columns, Bool]:
        columns = build(rows, now, skew)
        if not rows.unsure.any():
            for name, (values, distinct) in rows.distinct.items():
                seed(columns, name, values, distinct)
        return columns, rows.unsure

    return decode


_BUILDERS: dict[str, Callable[[_Rows, float, float], Columns]] = {
    "inference": _inference,
    "gpu": _gpu,
    "metric": _metric,
    "feedback": _feedback,
}
FAST_DECODERS: dict[str, Callable[..., tuple[Columns, Bool]]] = {
    kind: _run(build) for kind, build in _BUILDERS.items()
}
