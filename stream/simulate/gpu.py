"""NVML-like GPU telemetry that follows each host's load, with GPU incidents applied.

Numbers are those of an H100 SXM (80 GB, 700 W, 1980 MHz boost). clocks_event_reasons
uses NVML's bit values so a detector can decode them exactly as it would in production.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .incidents import Resolved
from .load import Load
from .spec import Fleet, IncidentKind

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

GPU_IDLE = 0x1
SW_POWER_CAP = 0x4
HW_SLOWDOWN = 0x8
SW_THERMAL = 0x20
HW_THERMAL = 0x40
HW_POWER_BRAKE = 0x80

MEM_TOTAL_MIB = 81_559.0
POWER_LIMIT_W = 700.0
IDLE_POWER_W = 70.0
BOOST_MHZ = 1980.0
IDLE_MHZ = 345.0
# Weights plus the KV cache the server reserves, as a share of memory, by size class.
MEM_BASE = {"7b": 0.55, "13b": 0.68, "70b": 0.86}


@dataclass
class GpuRows:
    t: F64
    host: I64
    gpu: I64
    sm: F64
    mem_util: F64
    mem_used: F64
    temp: F64
    power: F64
    clock: F64
    reasons: I64
    xid: I64  # -1 = none
    ecc_sbe: I64
    ecc_dbe: I64
    pcie: I64


class Telemetry:
    def __init__(
        self, fleet: Fleet, load: Load, incidents: list[Resolved], interval_s: float, seed: int
    ) -> None:
        self._fleet = fleet
        self._load = load
        self._interval = interval_s
        self._gpu_incidents = [
            r
            for r in incidents
            if r.kind
            in (IncidentKind.GPU_THROTTLE, IncidentKind.GPU_XID, IncidentKind.GPU_MEMORY_LEAK)
        ]
        n_hosts, n_gpus = len(fleet.hosts), len(fleet.gpu_uuids[0])
        rng = np.random.default_rng([seed, 0x6E0])
        self._temp_offset = rng.normal(0.0, 2.0, (n_hosts, n_gpus))
        self._mem_base = np.array([MEM_BASE[fleet.sizes[m]] for m in fleet.host_model])[:, None]
        # Cumulative counters carry across windows, as NVML's do.
        self._sbe = np.zeros((n_hosts, n_gpus), dtype=np.int64)
        self._dbe = np.zeros((n_hosts, n_gpus), dtype=np.int64)
        self._pcie = np.zeros((n_hosts, n_gpus), dtype=np.int64)
        self._shape = (n_hosts, n_gpus)

    def sample_times(self, t0: float, t1: float) -> F64:
        k0 = int(np.ceil(t0 / self._interval - 1e-9))
        k1 = int(np.ceil(t1 / self._interval - 1e-9))
        return np.arange(k0, k1, dtype=np.float64) * self._interval

    def generate(self, rng: np.random.Generator, t0: float, t1: float) -> GpuRows:
        ts = self.sample_times(t0, t1)
        n_hosts, n_gpus = self._shape
        shape = (len(ts), n_hosts, n_gpus)
        t = np.broadcast_to(ts[:, None, None], shape)
        host = np.broadcast_to(np.arange(n_hosts)[None, :, None], shape)
        gpu = np.broadcast_to(np.arange(n_gpus)[None, None, :], shape)
        util = self._load.utilisation(t.ravel(), host.ravel()).reshape(shape)
        util = np.clip(util * rng.normal(1.0, 0.06, shape), 0.0, 1.0)
        slow = np.ones(shape)
        throttled = np.zeros(shape, dtype=bool)
        power_bound = np.zeros(shape, dtype=bool)
        leak = np.zeros(shape)
        present = np.ones(shape, dtype=bool)
        xid = np.full(shape, -1, dtype=np.int64)
        dbe_hit = np.zeros(shape, dtype=np.int64)
        for r in self._gpu_incidents:
            mask = r.window(t) & (host == r.host)
            if r.gpu >= 0:
                mask &= gpu == r.gpu
            if not mask.any():
                continue
            if r.kind is IncidentKind.GPU_THROTTLE:
                slow[mask] = 1.0 + 0.55 * r.severity
                throttled |= mask
                if r.detail == "power":
                    power_bound |= mask
            elif r.kind is IncidentKind.GPU_MEMORY_LEAK:
                leak[mask] = np.minimum(1.0, r.severity) * r.progress(t[mask])
            elif r.kind is IncidentKind.GPU_XID:
                # The first reading reports the XID; then the GPU is off the bus until reset.
                first = mask & (t < r.start + self._interval)
                code = int(r.detail) if r.detail.isdigit() else 79
                xid[first] = code
                if code == 48:
                    dbe_hit[first] = 1
                present &= ~(mask & ~first)

        busy = np.minimum(1.0, util * 1.3 * np.sqrt(slow))
        sm = np.clip(100.0 * busy + rng.normal(0.0, 2.0, shape), 0.0, 100.0)
        mem_util = np.clip(0.65 * sm + rng.normal(0.0, 3.0, shape), 0.0, 100.0)
        base = self._mem_base[None, :, :] + 0.06 * util
        used = MEM_TOTAL_MIB * (base + (0.995 - base) * leak) + rng.normal(0.0, 40.0, shape)
        used = np.clip(used, 0.0, MEM_TOTAL_MIB)
        # Decode is memory-bound: a fully busy GPU sits just under its power limit.
        power = IDLE_POWER_W + (0.92 * POWER_LIMIT_W - IDLE_POWER_W) * busy**1.3
        power = power * rng.normal(1.0, 0.02, shape)
        temp = 30.0 + 42.0 * busy + self._temp_offset[None] + rng.normal(0.0, 0.5, shape)
        clock = np.where(sm < 3.0, IDLE_MHZ, BOOST_MHZ) + rng.normal(0.0, 5.0, shape)
        reasons = np.where(sm < 3.0, GPU_IDLE, 0)
        reasons = np.where(power > 0.98 * POWER_LIMIT_W, reasons | SW_POWER_CAP, reasons)
        thermal = throttled & ~power_bound
        clock = np.where(throttled, BOOST_MHZ / slow + rng.normal(0.0, 15.0, shape), clock)
        temp = np.where(thermal, 86.0 + 3.0 * slow + rng.normal(0.0, 0.8, shape), temp)
        power = np.where(power_bound, POWER_LIMIT_W * rng.uniform(0.97, 1.0, shape), power)
        reasons = np.where(thermal, reasons | SW_THERMAL | HW_THERMAL, reasons)
        reasons = np.where(power_bound, reasons | SW_POWER_CAP | HW_POWER_BRAKE, reasons)
        power = np.minimum(power, POWER_LIMIT_W)

        sbe = rng.poisson(2e-5, shape)
        pcie = rng.poisson(5e-5, shape)
        sbe_total = self._sbe[None] + np.cumsum(sbe, axis=0)
        dbe_total = self._dbe[None] + np.cumsum(dbe_hit, axis=0)
        pcie_total = self._pcie[None] + np.cumsum(pcie, axis=0)
        if len(ts):
            self._sbe, self._dbe, self._pcie = sbe_total[-1], dbe_total[-1], pcie_total[-1]

        # A GPU that has just fallen off the bus reports nothing but the XID.
        gone = xid >= 0
        for arr in (sm, mem_util, power, clock):
            arr[gone] = 0.0
        keep = present.ravel()
        return GpuRows(
            t=t.ravel()[keep],
            host=host.ravel()[keep],
            gpu=gpu.ravel()[keep],
            sm=sm.ravel()[keep],
            mem_util=mem_util.ravel()[keep],
            mem_used=used.ravel()[keep],
            temp=temp.ravel()[keep],
            power=power.ravel()[keep],
            clock=np.maximum(clock, 0.0).ravel()[keep],
            reasons=reasons.ravel()[keep],
            xid=xid.ravel()[keep],
            ecc_sbe=sbe_total.ravel()[keep],
            ecc_dbe=dbe_total.ravel()[keep],
            pcie=pcie_total.ravel()[keep],
        )
