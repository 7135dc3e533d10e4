"""NVML constants, the ``gpu_health`` detector's configuration and its per-GPU learned state."""

from __future__ import annotations

import math

from pydantic import Field, field_validator

from detectors.base import DetectorConfig

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


class GpuHealthConfig(DetectorConfig):
    # Not sw_power_cap: a busy GPU at its power limit is doing its job (NVML sets the bit
    # whenever the power governor trims clocks); HW power brake is the trouble signal.
    throttle_reasons: tuple[str, ...] = Field(
        (
            "hw_slowdown",
            "sw_thermal_slowdown",
            "hw_thermal_slowdown",
            "hw_power_brake_slowdown",
        ),
        description=(
            "NVML clocks-event reasons that count as throttling (sw_power_cap is left "
            "out: a busy GPU at its power limit is fine)."
        ),
    )
    throttle_window: int = Field(
        20, ge=1, description="Samples the throttled fraction is averaged over."
    )  # samples the throttled fraction averages over
    throttle_fraction: float = Field(
        0.5, gt=0, le=1, description="Throttled fraction of the window that is an incident."
    )
    event_hold_s: float = Field(
        600.0, ge=0, description="An XID error or ECC double-bit error stays an incident this long."
    )  # an XID or DBE stays an incident this long
    leak_window: int = Field(
        60, ge=3, description="Samples in the long memory-growth trend."
    )  # samples
    leak_min_r2: float = Field(
        0.8, ge=0, le=1, description="R^2 the long memory trend needs to count as a leak."
    )
    # A fast leak fills a GPU in minutes, before the long trend is clean: a short trend
    # also counts when it outgrows the median GPU's short trend (load grows every GPU's
    # KV cache together; a leak is one process) by fast_leak_pct_per_min of total memory.
    fast_leak_window: int = Field(
        20, ge=3, description="Samples in the short memory-growth trend (a fast leak)."
    )  # samples
    fast_leak_min_r2: float = Field(
        0.7, ge=0, le=1, description="R^2 the short memory trend needs to count."
    )
    fast_leak_pct_per_min: float = Field(
        3.0,
        ge=0,
        description=(
            "A short trend counts when it outgrows the median GPU's by this share of "
            "total memory per minute."
        ),
    )
    leak_horizon_s: float = Field(
        3600.0,
        gt=0,
        description="A leak alerts when the trend fills the GPU's memory within this long.",
    )  # alert when full within this
    util_busy_pct: float = Field(
        50.0,
        gt=0,
        le=100,
        description="Utilisation (smoothed, %) above which a GPU counts as busy.",
    )
    util_collapse_pct: float = Field(
        5.0, ge=0, le=100, description="Utilisation (%) a busy GPU collapsing below is an incident."
    )
    util_fast_alpha: float = Field(
        0.5, gt=0, le=1, description="Learning rate of the fast utilisation average, per sample."
    )
    util_slow_alpha: float = Field(
        0.02, gt=0, le=1, description="Learning rate of the slow utilisation average, per sample."
    )
    util_warmup: int = Field(10, ge=1, description="Samples before utilisation collapse is judged.")
    # Off by default: an untuned multivariate model pages on ordinary load swings;
    # enable it once `llmwatch tune` has set hst_threshold on your own fleet's history.
    hst_enabled: bool = Field(
        False,
        description=(
            "Run the per-host multivariate HalfSpaceTrees check; off until tuned on your "
            "fleet's history."
        ),
    )
    hst_interval_s: float = Field(
        30.0, gt=0, description="Event time between two samples fed to the per-host model."
    )
    hst_trees: int = Field(10, ge=1, description="Trees in the HalfSpaceTrees model.")
    hst_height: int = Field(6, ge=1, description="Height of each tree.")
    hst_window: int = Field(
        50, ge=2, description="Window size of the HalfSpaceTrees model, in samples."
    )
    hst_threshold: float = Field(
        0.5, gt=0, le=1, description="Anomaly score that is an incident (normal hosts score ~0.05)."
    )  # normal hosts score ~0.05
    seed: int = Field(
        0, description="Random seed of the HalfSpaceTrees model, for reproducible replays."
    )
    series_ttl_s: float = Field(
        86400.0, gt=0, description="A GPU with no samples for this long is forgotten (state freed)."
    )

    @field_validator("throttle_reasons")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(v) - set(BITS_BY_NAME))
        if unknown:
            raise ValueError(
                f"unknown clocks-event reasons {unknown}; known: {sorted(BITS_BY_NAME)}"
            )
        if "gpu_idle" in v:
            raise ValueError("gpu_idle is not a throttle")
        return v
