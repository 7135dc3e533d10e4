"""error_rate: three series with a 0.5 % background error rate, 40 minutes.

Incidents after warm-up: llama-70b on gw-b fails 25 % of requests for 5 minutes, and
mistral-7b on gw-a times out 30 % of requests for 4 minutes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.columns import STATUS_CODES
from tests.detectors.cases import inference_columns, split

T0 = 1.7e9


def make_case(seed: int) -> tuple[list[Any], list[npt.NDArray[np.bool_]]]:
    rng = np.random.default_rng(seed)
    n = 6000
    ts = T0 + np.sort(rng.uniform(0, 2400.0, n))
    which = rng.integers(0, 3, n)
    model = np.array(["llama-70b", "llama-70b", "mistral-7b"], dtype=object)[which]
    gateway = np.array(["gw-a", "gw-b", "gw-a"], dtype=object)[which]
    status = np.where(rng.random(n) < 0.005, STATUS_CODES["error"], STATUS_CODES["ok"])
    burst = (which == 1) & (ts >= T0 + 1300) & (ts < T0 + 1600)
    stall = (which == 2) & (ts >= T0 + 1900) & (ts < T0 + 2140)
    status = np.where(burst & (rng.random(n) < 0.25), STATUS_CODES["error"], status)
    status = np.where(stall & (rng.random(n) < 0.3), STATUS_CODES["timeout"], status)
    cols = inference_columns(ts, model=model, gateway=gateway, status=status)
    return split(cols, burst | stall, 200)
