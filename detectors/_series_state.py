"""The generic series detector's per-series state: its arrays (``SeriesState`` columns)
and the migrations that bring an older snapshot's state to the current layout (each
registered in ``SeriesDetector.state_migrations``). Every version appended what it added
at the end of the scalars and the tails, so a migration pads with what the new columns
start at."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from detectors._tracking import FiringState
from detectors.base import Migration
from detectors.kernels import robust_layout as k
from detectors.kernels.tail import TAIL_COLUMNS
from detectors.kernels.weekday import WEEKDAYS
from detectors.registry import Column, SeriesRegistry, SeriesState

F64 = npt.NDArray[np.float64]

# Per-series state arrays up to version 9: scalars, daily profile level and scale,
# weekday offsets, tails (version 10 added "hv", the ring of the last values).
_ARRAYS = ("st", "pl", "ps", "pw", "tails")
NEAREST_SAMPLES = 2016  # the ring's default length: a week of 5-minute rows


def columns(
    profile_slots: int,
    scalars: int = k.SERIES_COLUMNS,
    tails: int = k.TAILS,
    nearest: int = NEAREST_SAMPLES,
) -> dict[str, Column]:
    return {
        "st": Column(shape=(scalars,)),
        "pl": Column(shape=(profile_slots,)),
        "ps": Column(shape=(profile_slots,)),
        "pw": Column(shape=(WEEKDAYS,)),
        "tails": Column(shape=(TAIL_COLUMNS * tails,)),
        "hv": Column(dtype=np.float32, shape=(nearest,)),
    }


# Version 3's layout: 30 scalars and six tails (version 4 added the residual envelope
# and its novelty tail at the end of each; version 5 one scalar, the window tail's run;
# version 6 three, the level before the last level shift and when it was left; version
# 7 four, the last value, the series' step, whether it moves in steps and the lowest
# value seen; version 8 three, the run of repeats, the share of rows that repeat and
# the run as last learned, and the tail of runs of repeats; version 9 changed what one
# column means, not the layout; version 10 two, the ring's count and the nearest-value
# tail's running run, that tail, and the ring itself).
_V3_SCALARS, _V3_TAILS = 30, 6
_V4_SCALARS, _V5_SCALARS, _V6_SCALARS, _V7_SCALARS = 33, 34, 37, 41
_V8_SCALARS, _V8_TAILS = 44, 8


def _nearest(payload: dict[str, Any]) -> int:
    """The ring length the restored detector will have (its params, or the default)."""
    return int(payload.get("params", {}).get("nearest_samples", NEAREST_SAMPLES))


def _from_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """State version 2 kept the arrays column-per-series beside its own registry."""
    old = payload["state"]
    slots = int(np.asarray(old["pl"]).shape[0])
    cols = columns(slots, _V3_SCALARS, _V3_TAILS, _nearest(payload))
    series = SeriesState(("series",), cols, ttl_s=float(old["registry"]["ttl_s"]))
    registry = SeriesRegistry(("series",), ttl_s=1.0)
    registry.set_state(old["registry"])
    series.adopt(registry, {n: np.ascontiguousarray(np.asarray(old[n]).T) for n in _ARRAYS})
    firing = FiringState()
    firing.firing = set(old["firing"])
    return {**payload, "state": {"series": series, "firing": firing}}


def _widened(
    old: SeriesState, scalars: int, tails: int = _V8_TAILS, nearest: int = NEAREST_SAMPLES
) -> tuple[dict[str, Column], dict[str, F64]]:
    """An older layout's columns and arrays, each array padded with zeros to the columns
    of a layout with ``scalars`` scalars and ``tails`` tails (what later versions appended
    starts at 0); an array the older layout lacked starts fresh."""
    cols = columns(int(old.columns["pl"].shape[0]), scalars, tails, nearest)
    arrays = {
        name: np.pad(have, ((0, 0), (0, cols[name].shape[0] - have.shape[1])))
        for name, have in old.arrays.items()
    }
    return cols, arrays


def _adopted(
    payload: dict[str, Any], old: SeriesState, cols: dict[str, Column], arrays: dict[str, F64]
) -> dict[str, Any]:
    series = SeriesState(("series",), cols, ttl_s=old.registry.ttl_s)
    series.adopt(old.registry, arrays)
    return {**payload, "state": {**payload["state"], "series": series}}


def _from_v3(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 4 appended the residual envelope and the novelty tail. The tail starts
    fresh; the envelope starts at 3 robust scales either side of the baseline (what a
    settled series' residuals span), not at 0, where every next row would be novel."""
    old: SeriesState = payload["state"]["series"]
    cols, arrays = _widened(old, _V4_SCALARS)
    reach = 3.0 * 1.2533 * arrays["st"][:, k.S_SC]  # sd per mean absolute deviation
    arrays["st"][:, k.S_HI], arrays["st"][:, k.S_LO] = reach, -reach
    return _adopted(payload, old, cols, arrays)


def _from_v4(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 5 appended the plain window tail's running-run peak (0: not in a run). That
    tail keeps what it learned as a row tail; its rate falls to a run rate within a few
    thousand rows (the rate memory), and it is stricter than a new one meanwhile."""
    old: SeriesState = payload["state"]["series"]
    return _adopted(payload, old, *_widened(old, _V5_SCALARS))


def _from_v5(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 6 appended the level before the last level shift (both baselines) and its
    time; at 0 no earlier level is known, so the next return to one pages as before."""
    old: SeriesState = payload["state"]["series"]
    return _adopted(payload, old, *_widened(old, _V6_SCALARS))


def _from_v6(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 7 appended the last value, the series' step and the share of changes that
    are whole steps (for the continuity correction), and the lowest value seen (a bound
    below zero is not stated on a series never below it). The last and lowest values
    were not kept: NaN, so the step is learned from the second row after the restore on,
    no correction is made until about a hundred changes have shown the series moves in
    steps, and the lowest value is the lowest seen since the restore."""
    old: SeriesState = payload["state"]["series"]
    cols, arrays = _widened(old, _V7_SCALARS)
    arrays["st"][:, [k.S_PREV, k.S_LOWEST]] = np.nan
    return _adopted(payload, old, cols, arrays)


def _from_v7(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 8 appended the run of repeats (0: none running), the share of rows that
    repeat and the tail of runs of repeats, all fresh: the stuck-value statistic is not
    scored until its tail has learned ``warmup_samples`` rows after the restore."""
    old: SeriesState = payload["state"]["series"]
    return _adopted(payload, old, *_widened(old, _V8_SCALARS))


def _from_v8(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 9 counts an episode's rows toward a rebase from the last stuck stretch, in
    the column that held the episode's start time (which nothing read). An episode open
    at the snapshot had no stuck stretch counted, so all its rows count."""
    old: SeriesState = payload["state"]["series"]
    cols, arrays = _widened(old, _V8_SCALARS)
    arrays["st"][:, k.S_EP_MOVED] = arrays["st"][:, k.S_EP_LEN]
    return _adopted(payload, old, cols, arrays)


def _from_v9(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 10 appended the ring of the last values, their count and the tail of the
    distance to the nearest of them, all fresh: that statistic is not scored until its
    tail has learned half of ``warmup_samples`` rows after the restore."""
    old: SeriesState = payload["state"]["series"]
    return _adopted(payload, old, *_widened(old, k.SERIES_COLUMNS, k.TAILS, _nearest(payload)))


MIGRATIONS: dict[int, Migration] = {
    2: _from_v2,
    3: _from_v3,
    4: _from_v4,
    5: _from_v5,
    6: _from_v6,
    7: _from_v7,
    8: _from_v8,
    9: _from_v9,
}
