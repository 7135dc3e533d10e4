"""feedback: two model versions, ratings and requests; one version's quality falls for
a while (worse ratings, more refusals, more truncations)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.columns import FINISH_CODES, FeedbackColumns
from tests.detectors.cases import inference_columns, obj

T0 = 1.7e9
SPAN = 4 * 3600.0
BAD = (T0 + 2.5 * 3600, T0 + 3.5 * 3600)


def _ratings(rng: np.random.Generator) -> tuple[FeedbackColumns, npt.NDArray[np.bool_]]:
    n = 4000
    ts = T0 + np.sort(rng.uniform(0, SPAN, n))
    version = np.where(rng.random(n) < 0.5, "v1", "v2")
    bad = (version == "v2") & (ts >= BAD[0]) & (ts < BAD[1])
    score = np.clip(rng.normal(np.where(bad, -0.1, 0.5), 0.35), -1, 1)
    cols = FeedbackColumns(
        ts=ts,
        request_id=obj([f"r{i}" for i in range(n)], n),
        model=obj("llama-70b", n),
        model_version=obj(version, n),
        score=score,
        label=obj(None, n),
    )
    return cols, bad


def _requests(rng: np.random.Generator) -> tuple[Any, npt.NDArray[np.bool_]]:
    n = 14400
    ts = T0 + np.sort(rng.uniform(0, SPAN, n))
    version = np.where(rng.random(n) < 0.5, "v1", "v2")
    bad = (version == "v2") & (ts >= BAD[0]) & (ts < BAD[1])
    refusal = (rng.random(n) < np.where(bad, 0.06, 0.015)).astype(np.float64)
    length = rng.random(n) < np.where(bad, 0.09, 0.04)
    finish = np.where(length, FINISH_CODES["length"], FINISH_CODES["stop"])
    cols = inference_columns(ts, model_version=version, refusal=refusal, finish_reason=finish)
    return cols, bad


def make_case(seed: int) -> tuple[list[Any], list[npt.NDArray[np.bool_]]]:
    rng = np.random.default_rng(seed)
    (fb, fb_bad), (req, req_bad) = _ratings(rng), _requests(rng)
    batches: list[Any] = []
    labels: list[npt.NDArray[np.bool_]] = []
    # Ten-minute windows, each a batch of requests then one of the ratings that arrived.
    for lo in np.arange(T0, T0 + SPAN, 600.0):
        for cols, bad in ((req, req_bad), (fb, fb_bad)):
            rows = np.flatnonzero((cols.ts >= lo) & (cols.ts < lo + 600.0))
            if rows.size:
                batches.append(cols.take(rows))
                labels.append(bad[rows].copy())
    return batches, labels
