"""series: three metric series at 15 s; one spikes briefly and later shifts its level."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.columns import MetricColumns, series_key
from tests.detectors.cases import obj, split


def make_case(seed: int) -> tuple[list[Any], list[npt.NDArray[np.bool_]]]:
    rng = np.random.default_rng(seed)
    steps = 1500
    names = ["vllm:num_requests_waiting", "vllm:gpu_cache_usage_perc", "gateway_rps"]
    base = np.array([4.0, 0.55, 120.0])
    noise = np.array([1.0, 0.04, 8.0])
    t = np.asarray(1.7e9 + 15.0 * np.repeat(np.arange(steps), 3), dtype=np.float64)
    which = np.tile(np.arange(3), steps)
    step = np.repeat(np.arange(steps), 3)
    value = rng.normal(base[which], noise[which])
    bad = (which == 2) & (((step >= 700) & (step < 706)) | ((step >= 1100) & (step < 1250)))
    value = np.where(bad & (step < 706), value + 10 * noise[which], value)
    value = np.where(bad & (step >= 1100), value - 4 * noise[which], value)
    labels = [{"instance": "gw-a:8000"} for _ in range(t.size)]
    cols = MetricColumns(
        ts=t,
        name=obj([names[i] for i in which], t.size),
        series=obj([series_key(names[i], labels[0]) for i in which], t.size),
        labels=obj(labels, t.size),
        value=value,
    )
    return split(cols, bad, 300)
