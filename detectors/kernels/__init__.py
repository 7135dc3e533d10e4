"""Numba kernels: whole batches in, per-row results out, per-series state in arrays.

Every kernel takes the batch's dense series ids (``ids``, int64), event times
(``ts``, float64 epoch seconds, already finite) and values, plus the state arrays
indexed by series id, which it updates in place. The Python wrappers in the
detector modules own those arrays (allocation, growth, validation); kernels
trust their inputs. Non-finite values are skipped (they neither learn nor score;
their per-row output is NaN). Time never moves backwards: an event older than a
series' last event is learned without decaying the state and does not move the
series' clock.

Families: event-time EWMA (mean/variance with a half-life, gated so that an
ongoing anomaly is not learned), a DDSketch-like quantile sketch, CUSUM and
Page-Hinkley change detection, hour-of-week seasonal baselines, decayed binomial
counts with a Wilson bound, and inter-arrival (heartbeat) tracking.
"""

from __future__ import annotations

from detectors.kernels.change import cusum_update, page_hinkley_update
from detectors.kernels.ewma import ewma_update
from detectors.kernels.heartbeat import heartbeat_update, silence_ratio
from detectors.kernels.rates import decayed_counts_update, wilson_lower
from detectors.kernels.seasonal import HOURS_PER_WEEK, hour_of_week, seasonal_update
from detectors.kernels.sketch import (
    sketch_add,
    sketch_index,
    sketch_merge,
    sketch_quantiles,
    sketch_value,
)

__all__ = [
    "HOURS_PER_WEEK",
    "cusum_update",
    "decayed_counts_update",
    "ewma_update",
    "heartbeat_update",
    "hour_of_week",
    "page_hinkley_update",
    "seasonal_update",
    "silence_ratio",
    "sketch_add",
    "sketch_index",
    "sketch_merge",
    "sketch_quantiles",
    "sketch_value",
    "wilson_lower",
]
