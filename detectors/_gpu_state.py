"""NVML constants and the per-GPU learned state behind the ``gpu_health`` detector."""

from __future__ import annotations

import math

# nvmlClocksEventReasons (nvml.h). 0x1 means the GPU is idle: not a throttle.
GPU_IDLE = 0x1
APPLICATIONS_CLOCKS_SETTING = 0x2
SW_POWER_CAP = 0x4
HW_SLOWDOWN = 0x8
SYNC_BOOST = 0x10
SW_THERMAL_SLOWDOWN = 0x20
HW_THERMAL_SLOWDOWN = 0x40
HW_POWER_BRAKE_SLOWDOWN = 0x80
DISPLAY_CLOCK_SETTING = 0x100

REASON_NAMES: dict[int, str] = {
    GPU_IDLE: "gpu_idle",
    APPLICATIONS_CLOCKS_SETTING: "applications_clocks_setting",
    SW_POWER_CAP: "sw_power_cap",
    HW_SLOWDOWN: "hw_slowdown",
    SYNC_BOOST: "sync_boost",
    SW_THERMAL_SLOWDOWN: "sw_thermal_slowdown",
    HW_THERMAL_SLOWDOWN: "hw_thermal_slowdown",
    HW_POWER_BRAKE_SLOWDOWN: "hw_power_brake_slowdown",
    DISPLAY_CLOCK_SETTING: "display_clock_setting",
}
BITS_BY_NAME = {v: k for k, v in REASON_NAMES.items()}
# Hardware-initiated slowdowns are worse than the driver holding power to its cap.
HARDWARE_THROTTLES = HW_SLOWDOWN | HW_THERMAL_SLOWDOWN | HW_POWER_BRAKE_SLOWDOWN

# XIDs that mean the GPU or its memory is in trouble and usually needs a reset or
# a drain: 48 DBE, 63/64 row remapping, 74 NVLink, 79 fell off the bus, 92 high SBE
# rate, 94/95 contained/uncontained ECC, 119/120 GSP errors.
CRITICAL_XIDS = frozenset({48, 63, 64, 74, 79, 92, 94, 95, 119, 120})


def decode_reasons(mask: int) -> list[str]:
    """Names of the NVML clocks-event reasons set in ``mask`` (unknown bits as hex)."""
    names = [name for bit, name in REASON_NAMES.items() if mask & bit]
    unknown = mask & ~sum(REASON_NAMES)
    if unknown:
        names.append(hex(unknown))
    return names


class GpuState:
    """Everything learned about one GPU. Plain floats: updated once per sample."""

    __slots__ = (
        "cov_tm",
        "dbe",
        "dbe_delta",
        "dbe_ts",
        "fast",
        "host",
        "last_ts",
        "mean_m",
        "mean_t",
        "mem_total",
        "mem_used",
        "n_leak",
        "n_util",
        "t0",
        "throttle_bits",
        "throttle_frac",
        "util_fast",
        "util_slow",
        "var_m",
        "var_t",
        "xid",
        "xid_ts",
    )

    def __init__(self, host: str) -> None:
        self.host = host
        self.last_ts = -math.inf
        self.throttle_frac = 0.0
        self.throttle_bits = 0  # OR of incident bits seen while the fraction was raised
        self.xid = -1
        self.xid_ts = -math.inf
        self.dbe = -1
        self.dbe_delta = 0
        self.dbe_ts = -math.inf
        self.n_leak = 0
        self.t0 = math.nan
        self.mean_t = self.mean_m = self.var_t = self.var_m = self.cov_tm = 0.0
        self.mem_used = math.nan
        self.mem_total = math.nan
        self.n_util = 0
        self.util_slow = self.util_fast = 0.0
        # A second, short trend for leaks fast enough to fill the GPU within minutes.
        self.fast: GpuState | None = None

    def update_leak(self, t: float, used: float, total: float, alpha: float) -> None:
        """Exponentially weighted regression of memory used on time (West's update)."""
        if math.isnan(self.t0):
            self.t0 = t
        x = t - self.t0  # relative time keeps the squares well inside float precision
        self.mem_used, self.mem_total = used, total
        if self.n_leak == 0:
            self.mean_t, self.mean_m = x, used
            self.n_leak = 1
            return
        a = max(alpha, 1.0 / (self.n_leak + 1))
        dt, dm = x - self.mean_t, used - self.mean_m
        self.mean_t += a * dt
        self.mean_m += a * dm
        self.var_t = (1 - a) * (self.var_t + a * dt * dt)
        self.var_m = (1 - a) * (self.var_m + a * dm * dm)
        self.cov_tm = (1 - a) * (self.cov_tm + a * dt * dm)
        self.n_leak += 1

    def leak(self, min_samples: int, min_r2: float) -> tuple[float, float]:
        """(slope in MiB/s, seconds to full); slope 0 and inf when no leak is evident."""
        if self.n_leak < min_samples or self.var_t <= 0 or self.var_m <= 0:
            return 0.0, math.inf
        slope = self.cov_tm / self.var_t
        r2 = self.cov_tm * self.cov_tm / (self.var_t * self.var_m)
        if slope <= 0 or r2 < min_r2 or not math.isfinite(self.mem_total):
            return 0.0, math.inf
        return slope, max(self.mem_total - self.mem_used, 0.0) / slope

    def update_util(self, util: float, fast: float, slow: float, collapsed: bool) -> None:
        if self.n_util == 0:
            self.util_fast = self.util_slow = util
        else:
            self.util_fast += fast * (util - self.util_fast)
            a = max(slow, 1.0 / (self.n_util + 1))
            # While collapsed the busy baseline fades slowly: the collapse stays visible,
            # and a GPU drained on purpose still stops alerting after a while.
            self.util_slow += (a / 20 if collapsed else a) * (util - self.util_slow)
        self.n_util += 1
