"""Columnar batches: the hot-path form of the wire models.

Detectors take one of these per call, never a list of models, so the per-event
Python cost is paid once in decoding and the maths runs on whole arrays.
Missing optional numbers are NaN; missing optional ints are -1. String columns
are numpy object arrays (labels are few and repeat, so detectors factorise them
per batch rather than per event).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from .keys import series_key as series_key  # re-exported: its home is schemas.keys
from .labels import carry_concat, carry_take
from .models import FeedbackEvent, FinishReason, GpuSample, InferenceEvent, MetricSample, Status

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
Obj = npt.NDArray[np.object_]

STATUS_CODES: dict[str, int] = {s.value: i for i, s in enumerate(Status)}
FINISH_CODES: dict[str, int] = {f.value: i for i, f in enumerate(FinishReason)}

T = TypeVar("T", bound="Columns")


def _ts(value: datetime) -> float:
    return value.timestamp()


def _opt(value: float | None) -> float:
    return np.nan if value is None else float(value)


@dataclass(frozen=True)
class Columns:
    """Base for columnar batches; every field is a 1-d array of equal length."""

    # Not a field: per-batch label codes (schemas.labels), filled on first use.
    __slots__ = ("_label_cache",)

    kind: ClassVar[str] = ""

    def __len__(self) -> int:
        first = getattr(self, fields(self)[0].name)
        return len(first)

    def take(self: T, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_] | slice) -> T:
        """A new batch with the selected rows (copies; the source is never mutated)."""
        out = type(self)(**{f.name: getattr(self, f.name)[index] for f in fields(self)})
        carry_take(self, out, index)
        return out

    @classmethod
    def concat(cls: type[T], parts: Sequence[T]) -> T:
        if not parts:
            return cls.empty()
        out = cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )
        carry_concat(list(parts), out)
        return out

    @classmethod
    def empty(cls: type[T]) -> T:
        return cls.from_rows([])

    @classmethod
    def from_rows(cls: type[T], rows: Sequence[Any]) -> T:
        raise NotImplementedError


def _obj(values: Sequence[Any]) -> Obj:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


@dataclass(frozen=True, slots=True)
class InferenceColumns(Columns):
    kind: ClassVar[str] = "inference"

    ts: F64
    gateway: Obj
    model: Obj
    model_version: Obj
    route: Obj
    tenant: Obj
    host: Obj
    status: I64  # index into STATUS_CODES
    http_status: I64  # -1 when absent
    error_type: Obj
    latency_ms: F64
    ttft_ms: F64
    tpot_ms: F64
    queue_ms: F64
    prompt_tokens: F64
    completion_tokens: F64
    finish_reason: I64  # index into FINISH_CODES
    feedback_score: F64
    refusal: F64  # 1.0 / 0.0 / NaN
    toxicity: F64
    embedding_norm: F64

    @classmethod
    def from_rows(cls, rows: Sequence[InferenceEvent]) -> InferenceColumns:
        def norm(e: InferenceEvent) -> float:
            if e.embedding_norm is not None:
                return e.embedding_norm
            if e.embedding:
                return float(np.linalg.norm(np.asarray(e.embedding, dtype=np.float64)))
            return np.nan

        return cls(
            ts=np.array([_ts(e.ts) for e in rows], dtype=np.float64),
            gateway=_obj([e.gateway for e in rows]),
            model=_obj([e.model for e in rows]),
            model_version=_obj([e.model_version for e in rows]),
            route=_obj([e.route for e in rows]),
            tenant=_obj([e.tenant for e in rows]),
            host=_obj([e.host for e in rows]),
            status=np.array([STATUS_CODES[e.status.value] for e in rows], dtype=np.int64),
            http_status=np.array(
                [-1 if e.http_status is None else e.http_status for e in rows], dtype=np.int64
            ),
            error_type=_obj([e.error_type for e in rows]),
            latency_ms=np.array([e.latency_ms for e in rows], dtype=np.float64),
            ttft_ms=np.array([_opt(e.ttft_ms) for e in rows], dtype=np.float64),
            tpot_ms=np.array([_opt(e.tpot_ms) for e in rows], dtype=np.float64),
            queue_ms=np.array([_opt(e.queue_ms) for e in rows], dtype=np.float64),
            prompt_tokens=np.array([e.prompt_tokens for e in rows], dtype=np.float64),
            completion_tokens=np.array([e.completion_tokens for e in rows], dtype=np.float64),
            finish_reason=np.array(
                [FINISH_CODES[e.finish_reason.value] for e in rows], dtype=np.int64
            ),
            feedback_score=np.array([_opt(e.feedback_score) for e in rows], dtype=np.float64),
            refusal=np.array(
                [np.nan if e.refusal is None else float(e.refusal) for e in rows],
                dtype=np.float64,
            ),
            toxicity=np.array([_opt(e.toxicity) for e in rows], dtype=np.float64),
            embedding_norm=np.array([norm(e) for e in rows], dtype=np.float64),
        )


@dataclass(frozen=True, slots=True)
class GpuColumns(Columns):
    kind: ClassVar[str] = "gpu"

    ts: F64
    host: Obj
    gpu_index: I64
    gpu_uuid: Obj
    sm_util_pct: F64
    mem_util_pct: F64
    mem_used_mib: F64
    mem_total_mib: F64
    temp_c: F64
    power_w: F64
    power_limit_w: F64
    sm_clock_mhz: F64
    clocks_event_reasons: U64
    xid: I64  # -1 when absent
    ecc_sbe_total: I64
    ecc_dbe_total: I64
    pcie_replay_total: I64

    @classmethod
    def from_rows(cls, rows: Sequence[GpuSample]) -> GpuColumns:
        def f(name: str) -> F64:
            return np.array([getattr(r, name) for r in rows], dtype=np.float64)

        def i(name: str) -> I64:
            return np.array([getattr(r, name) for r in rows], dtype=np.int64)

        return cls(
            ts=np.array([_ts(r.ts) for r in rows], dtype=np.float64),
            host=_obj([r.host for r in rows]),
            gpu_index=i("gpu_index"),
            gpu_uuid=_obj([r.gpu_uuid for r in rows]),
            sm_util_pct=f("sm_util_pct"),
            mem_util_pct=f("mem_util_pct"),
            mem_used_mib=f("mem_used_mib"),
            mem_total_mib=f("mem_total_mib"),
            temp_c=f("temp_c"),
            power_w=f("power_w"),
            power_limit_w=f("power_limit_w"),
            sm_clock_mhz=f("sm_clock_mhz"),
            clocks_event_reasons=np.array([r.clocks_event_reasons for r in rows], dtype=np.uint64),
            xid=np.array([-1 if r.xid is None else r.xid for r in rows], dtype=np.int64),
            ecc_sbe_total=i("ecc_sbe_total"),
            ecc_dbe_total=i("ecc_dbe_total"),
            pcie_replay_total=i("pcie_replay_total"),
        )


@dataclass(frozen=True, slots=True)
class MetricColumns(Columns):
    kind: ClassVar[str] = "metric"

    ts: F64
    name: Obj
    series: Obj  # canonical series key, see series_key()
    labels: Obj  # dict[str, str] per row
    value: F64

    @classmethod
    def from_rows(cls, rows: Sequence[MetricSample]) -> MetricColumns:
        return cls(
            ts=np.array([_ts(r.ts) for r in rows], dtype=np.float64),
            name=_obj([r.name for r in rows]),
            series=_obj([series_key(r.name, r.labels) for r in rows]),
            labels=_obj([dict(r.labels) for r in rows]),
            value=np.array([r.value for r in rows], dtype=np.float64),
        )


@dataclass(frozen=True, slots=True)
class FeedbackColumns(Columns):
    kind: ClassVar[str] = "feedback"

    ts: F64
    request_id: Obj
    model: Obj
    model_version: Obj
    score: F64
    label: Obj

    @classmethod
    def from_rows(cls, rows: Sequence[FeedbackEvent]) -> FeedbackColumns:
        return cls(
            ts=np.array([_ts(r.ts) for r in rows], dtype=np.float64),
            request_id=_obj([r.request_id for r in rows]),
            model=_obj([r.model for r in rows]),
            model_version=_obj([r.model_version for r in rows]),
            score=np.array([r.score for r in rows], dtype=np.float64),
            label=_obj([r.label for r in rows]),
        )


COLUMNS_BY_KIND: dict[str, type[Columns]] = {
    "inference": InferenceColumns,
    "gpu": GpuColumns,
    "metric": MetricColumns,
    "feedback": FeedbackColumns,
}
