"""version_regression: llama-70b rolls out v2 on two gateways after 20 minutes.

On gw-a v2 is 60 % slower than v1 (its rows are the anomalous ones); on gw-b v2 is
as fast as v1 (a clean rollout that must stay quiet).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tests.detectors.cases import inference_columns, split

T0 = 1.7e9


def make_case(seed: int) -> tuple[list[Any], list[npt.NDArray[np.bool_]]]:
    rng = np.random.default_rng(seed)
    n = 6000
    ts = T0 + np.sort(rng.uniform(0, 2400.0, n))
    gateway = np.where(rng.random(n) < 0.5, "gw-a", "gw-b").astype(object)
    v2 = ts >= T0 + 1200
    version = np.where(v2, "v2", "v1").astype(object)
    latency = 900.0 * rng.lognormal(0.0, 0.35, n)
    bad = v2 & (gateway == "gw-a")
    latency = np.where(bad, 1.6 * latency, latency)
    cols = inference_columns(ts, gateway=gateway, model_version=version, latency_ms=latency)
    return split(cols, bad, 200)
