"""Offered load over time: the rate shape every generator shares.

Intensity = rate x diurnal(time of day) x burst(Azure trace arrival profile), normalised
so the span's mean is the requested rate. Host utilisation follows the same curve, so
queueing, batch slowdown and GPU telemetry rise and fall together.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .reference import Reference
from .spec import FleetSpec

F64 = npt.NDArray[np.float64]

BURST_BIN_S = 5.0
# Provisioned so that an average second runs hosts at this utilisation.
BASE_UTIL = 0.55
_DIURNAL_AMPLITUDE = 0.35
_PEAK_HOUR_UTC = 15.0
_BURST_DAMPING = 0.5  # the trace is one small deployment; a fleet aggregates many


class Load:
    def __init__(self, spec: FleetSpec, ref: Reference) -> None:
        rng = np.random.default_rng([spec.seed, 0x10AD])
        burst = 1.0 + _BURST_DAMPING * (ref.burst - 1.0)
        self._burst = np.clip(burst, 0.2, None) / np.clip(burst, 0.2, None).mean()
        self._offset = int(rng.integers(len(self._burst)))
        self._start_hour = (spec.start.timestamp() % 86400.0) / 3600.0
        self._rate = spec.rate
        self._norm = 1.0
        # Normalise over the span itself, so its mean rate is the one asked for.
        grid = np.arange(0.0, spec.duration_s, BURST_BIN_S)
        self._norm = float(self.shape(grid).mean())
        self.host_factor = rng.uniform(0.9, 1.1, spec.hosts)

    def _diurnal(self, t: F64) -> F64:
        hour = self._start_hour + t / 3600.0
        return 1.0 + _DIURNAL_AMPLITUDE * np.cos(2 * np.pi * (hour - _PEAK_HOUR_UTC) / 24.0)

    def shape(self, t: F64) -> F64:
        """Relative intensity at offsets ``t`` (mean ~1 over the span)."""
        idx = (self._offset + (t // BURST_BIN_S).astype(np.int64)) % len(self._burst)
        out: F64 = self._diurnal(t) * self._burst[idx] / self._norm
        return out

    def intensity(self, t: F64) -> F64:
        return self._rate * self.shape(t)

    def utilisation(self, t: F64, host: npt.NDArray[np.int64]) -> F64:
        return np.clip(BASE_UTIL * self.shape(t) * self.host_factor[host], 0.0, 0.985)
