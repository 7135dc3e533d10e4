"""traffic: three (model, gateway) series at 1 request/s each, 40 minutes.

Incidents after warm-up: gateway gw-b goes silent for 5 minutes (the rows labelled
anomalous are the first ones after the silence, which end it), and mistral-7b on gw-a
drops to 15 % of its rate for 6 minutes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tests.detectors.cases import inference_columns, split

T0 = 1.7e9


def make_case(seed: int) -> tuple[list[Any], list[npt.NDArray[np.bool_]]]:
    rng = np.random.default_rng(seed)
    n = 7200
    ts = T0 + np.sort(rng.uniform(0, 2400.0, n))
    which = rng.integers(0, 3, n)
    silent = (which == 1) & (ts >= T0 + 1300) & (ts < T0 + 1600)
    drop = (which == 2) & (ts >= T0 + 1900) & (ts < T0 + 2260)
    keep = ~silent & ~(drop & (rng.random(n) > 0.15))
    ts, which, drop = ts[keep], which[keep], drop[keep]
    after = (which == 1) & (ts >= T0 + 1600)
    first_after = np.zeros(ts.size, dtype=bool)
    first_after[np.flatnonzero(after)[:5]] = True
    model = np.array(["llama-70b", "llama-70b", "mistral-7b"], dtype=object)[which]
    gateway = np.array(["gw-a", "gw-b", "gw-a"], dtype=object)[which]
    cols = inference_columns(ts, model=model, gateway=gateway)
    return split(cols, drop | first_after, 200)
