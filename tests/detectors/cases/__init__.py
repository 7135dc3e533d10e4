"""Contract cases: one module per detector name, each defining ``make_case(seed)``.

``make_case(seed) -> (batches, labels)``: a list of Columns batches and, per batch, a
numpy bool array (True = the row is anomalous). The builders below make columnar
batches straight from arrays, so cases stay fast (no pydantic per row).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.columns import FINISH_CODES, STATUS_CODES, GpuColumns, InferenceColumns


def obj(values: Any, n: int) -> npt.NDArray[np.object_]:
    """An object column: a scalar repeated or a sequence copied."""
    arr = np.empty(n, dtype=object)
    arr[:] = values
    return arr


def inference_columns(ts: npt.NDArray[np.float64], **cols: Any) -> InferenceColumns:
    """An InferenceColumns batch with plausible defaults; pass any column to override."""
    n = ts.size
    nan = np.full(n, np.nan)
    base: dict[str, Any] = {
        "ts": ts.astype(np.float64),
        "gateway": obj("gw-1", n),
        "model": obj("llama-70b", n),
        "model_version": obj("v1", n),
        "route": obj("/v1/chat/completions", n),
        "tenant": obj("t1", n),
        "host": obj("h1", n),
        "status": np.full(n, STATUS_CODES["ok"], dtype=np.int64),
        "http_status": np.full(n, 200, dtype=np.int64),
        "error_type": obj(None, n),
        "latency_ms": np.full(n, 800.0),
        "ttft_ms": np.full(n, 120.0),
        "tpot_ms": np.full(n, 20.0),
        "queue_ms": nan.copy(),
        "prompt_tokens": np.full(n, 500.0),
        "completion_tokens": np.full(n, 200.0),
        "finish_reason": np.full(n, FINISH_CODES["stop"], dtype=np.int64),
        "feedback_score": nan.copy(),
        "refusal": nan.copy(),
        "toxicity": nan.copy(),
        "embedding_norm": nan.copy(),
    }
    for key, value in cols.items():
        if key not in base:
            raise KeyError(key)
        base[key] = obj(value, n) if base[key].dtype == object else np.asarray(value)
    return InferenceColumns(**base)


def gpu_columns(ts: npt.NDArray[np.float64], **cols: Any) -> GpuColumns:
    """A GpuColumns batch of a healthy busy GPU; pass any column to override."""
    n = ts.size
    base: dict[str, Any] = {
        "ts": ts.astype(np.float64),
        "host": obj("h1", n),
        "gpu_index": np.zeros(n, dtype=np.int64),
        "gpu_uuid": obj("GPU-0", n),
        "sm_util_pct": np.full(n, 85.0),
        "mem_util_pct": np.full(n, 60.0),
        "mem_used_mib": np.full(n, 40_000.0),
        "mem_total_mib": np.full(n, 81_559.0),
        "temp_c": np.full(n, 65.0),
        "power_w": np.full(n, 550.0),
        "power_limit_w": np.full(n, 700.0),
        "sm_clock_mhz": np.full(n, 1980.0),
        "clocks_event_reasons": np.zeros(n, dtype=np.uint64),
        "xid": np.full(n, -1, dtype=np.int64),
        "ecc_sbe_total": np.zeros(n, dtype=np.int64),
        "ecc_dbe_total": np.zeros(n, dtype=np.int64),
        "pcie_replay_total": np.zeros(n, dtype=np.int64),
    }
    for key, value in cols.items():
        if key not in base:
            raise KeyError(key)
        base[key] = obj(value, n) if base[key].dtype == object else np.asarray(value)
    return GpuColumns(**base)


def split(columns: Any, labels: npt.NDArray[np.bool_], size: int) -> tuple[list[Any], list[Any]]:
    """Cut one long batch (rows in time order) into batches of ``size`` rows."""
    n = len(columns)
    cuts = range(0, n, size)
    return (
        [columns.take(slice(i, i + size)) for i in cuts],
        [labels[i : i + size].copy() for i in cuts],
    )
