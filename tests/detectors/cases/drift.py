"""drift: one model version whose completions get twice as long and more truncated."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.columns import FINISH_CODES
from tests.detectors.cases import inference_columns, split


def make_case(seed: int) -> tuple[list[Any], list[npt.NDArray[np.bool_]]]:
    rng = np.random.default_rng(seed)
    n = 3 * 3600  # three events a second for an hour
    ts = 1.7e9 + np.sort(rng.uniform(0, 3600, n))
    shifted = ts >= 1.7e9 + 2400
    completion = rng.gamma(4.0, 50.0, n) * np.where(shifted, 2.0, 1.0)
    prompt = rng.gamma(2.0, 300.0, n)
    length = rng.random(n) < np.where(shifted, 0.25, 0.03)
    finish = np.where(length, FINISH_CODES["length"], FINISH_CODES["stop"])
    norm = rng.normal(12.0, 1.0, n)
    cols = inference_columns(
        ts,
        completion_tokens=np.round(completion),
        prompt_tokens=np.round(prompt),
        finish_reason=finish,
        embedding_norm=norm,
    )
    return split(cols, shifted, 400)
