"""gpu_health: four GPUs on two hosts; one throttles thermally, one reports XID 79,
one leaks memory, one collapses to zero utilisation."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.columns import GpuColumns
from tests.detectors.cases import gpu_columns, obj, split


def make_case(seed: int) -> tuple[list[Any], list[npt.NDArray[np.bool_]]]:
    rng = np.random.default_rng(seed)
    steps = 720  # one sample every 5 s for an hour
    parts, labels = [], []
    for g in range(4):
        t = np.asarray(1.7e9 + np.arange(steps) * 5.0 + g * 0.1, dtype=np.float64)
        k = np.arange(steps)
        util = np.clip(rng.normal(85, 5, steps), 0, 100)
        used = 40_000 + rng.normal(0, 200, steps)
        reasons = np.where(rng.random(steps) < 0.05, 0x4, 0).astype(np.uint64)
        xid = np.full(steps, -1, dtype=np.int64)
        temp = rng.normal(65, 2, steps)
        label = np.zeros(steps, dtype=bool)
        if g == 0:  # sustained HW thermal slowdown
            on = (k >= 300) & (k < 420)
            reasons = np.where(on, reasons | 0x40, reasons).astype(np.uint64)
            temp = np.where(on, temp + 25, temp)
            label = on & (k >= 310)
        elif g == 1:  # a single critical XID
            xid[500] = 79
            label[500] = True
        elif g == 2:  # leak: +50 MiB per sample from step 400 on
            used = used + np.where(k >= 400, (k - 400) * 50.0, 0.0)
            label = k >= 440
        else:  # utilisation collapse
            util = np.where(k >= 600, rng.uniform(0, 1, steps), util)
            label = k >= 600
        parts.append(
            gpu_columns(
                t,
                host=obj(f"h{g // 2}", steps),
                gpu_index=np.full(steps, g % 2),
                gpu_uuid=obj(f"GPU-{g}", steps),
                sm_util_pct=util,
                mem_used_mib=used,
                clocks_event_reasons=reasons,
                xid=xid,
                temp_c=temp,
            )
        )
        labels.append(label)
    cols = GpuColumns.concat(parts)
    lab = np.concatenate(labels)
    order = np.argsort(cols.ts, kind="stable")
    return split(cols.take(order), lab[order], 200)
