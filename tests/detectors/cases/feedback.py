"""feedback: two model versions; ratings of one fall sharply for a while."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from cases import obj, split
from schemas.columns import FeedbackColumns


def make_case(seed: int) -> tuple[list[Any], list[npt.NDArray[np.bool_]]]:
    rng = np.random.default_rng(seed)
    n = 4000
    ts = 1.7e9 + np.sort(rng.uniform(0, 4 * 3600, n))
    version = np.where(rng.random(n) < 0.5, "v1", "v2")
    bad = (version == "v2") & (ts >= 1.7e9 + 2.5 * 3600) & (ts < 1.7e9 + 3.5 * 3600)
    score = np.clip(rng.normal(np.where(bad, -0.1, 0.5), 0.35), -1, 1)
    cols = FeedbackColumns(
        ts=ts,
        request_id=obj([f"r{i}" for i in range(n)], n),
        model=obj("llama-70b", n),
        model_version=obj(version, n),
        score=score,
        label=obj(None, n),
    )
    return split(cols, bad, 250)
