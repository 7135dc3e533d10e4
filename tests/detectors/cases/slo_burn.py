"""slo_burn: two (model, gateway) series; one suffers a 10-minute error burst."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.columns import STATUS_CODES
from tests.detectors.cases import inference_columns, obj, split


def make_case(seed: int) -> tuple[list[Any], list[npt.NDArray[np.bool_]]]:
    rng = np.random.default_rng(seed)
    n = 2 * 2 * 3600  # two series, one request a second each, two hours
    ts = 1.7e9 + np.sort(rng.uniform(0, 2 * 3600, n))
    gateway = np.where(rng.random(n) < 0.5, "gw-a", "gw-b")
    status = np.where(rng.random(n) < 0.0005, STATUS_CODES["error"], STATUS_CODES["ok"])
    latency = rng.lognormal(np.log(900), 0.4, n)
    burst = (gateway == "gw-a") & (ts >= 1.7e9 + 5400) & (ts < 1.7e9 + 6000)
    failing = burst & (rng.random(n) < 0.3)
    status = np.where(failing, STATUS_CODES["timeout"], status)
    cols = inference_columns(ts, gateway=obj(gateway, n), status=status, latency_ms=latency)
    return split(cols, burst, 500)
