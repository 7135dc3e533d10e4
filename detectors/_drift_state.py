"""The ``drift`` detector's configuration and per-series state: the rows of a series'
state matrix (one column per metric), a named view of them, and River's Page-Hinkley done
in place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import Field

from detectors.budget import WEEK_S, BudgetedConfig, run_length_threshold

N_METRICS = 6

# Rows of a series' state matrix (one column per metric). The detector stacks every
# series' matrix in one array: a Python object and an array header per series cost more
# than the matrix itself at 100k series.
_SUMS, _BASE_MEAN, _BASE_VAR, _CLOSED, _CONFIRMED, _LAST_EFFECT = 0, 3, 4, 5, 6, 7
# Page-Hinkley (River's algorithm, "both" mode): running count and mean, the two
# cumulative sums and their extremes, and the drift flag.
_PH_N, _PH_MEAN, _PH_INC, _PH_DEC, _PH_MIN_INC, _PH_MAX_DEC, _PH_DRIFT = range(8, 15)
_ROWS = 15
_NEVER = float(-(2**62))
_NO_WINDOW = -(2**62)


class _Row:
    """Rows of ``_View.state`` under the name the algorithm uses: reads are views,
    writes assign in place."""

    def __init__(self, rows: int | slice) -> None:
        self.rows = rows

    def __get__(self, obj: _View, owner: type | None = None) -> npt.NDArray[np.float64]:
        row: npt.NDArray[np.float64] = obj.state[self.rows]
        return row

    def __set__(self, obj: _View, value: npt.NDArray[np.float64]) -> None:
        obj.state[self.rows] = value


class _View:
    """One (model, version) in the detector's stacked arrays: the open window, the
    baseline and the drift tests. Made per use; writes go to the detector's arrays."""

    __slots__ = ("rivers", "sid", "state", "windows")

    sums = _Row(slice(_SUMS, _BASE_MEAN))  # count, sum, sum of squares
    base_mean = _Row(_BASE_MEAN)
    base_var = _Row(_BASE_VAR)
    closed = _Row(_CLOSED)  # windows in the baseline
    confirmed = _Row(_CONFIRMED)
    last_effect = _Row(_LAST_EFFECT)  # signed, of the last closed window

    def __init__(
        self,
        table: npt.NDArray[np.float64],
        windows: npt.NDArray[np.int64],
        sid: int,
        rivers: list[Any] | None,
    ) -> None:
        self.state = table[sid]
        self.windows = windows
        self.sid = sid
        self.rivers = rivers  # River detectors, for the methods not done in place

    @property
    def cur_win(self) -> int:
        return int(self.windows[self.sid])

    @cur_win.setter
    def cur_win(self, win: int) -> None:
        self.windows[self.sid] = win


class _Series:
    """One series as snapshots stored it before the stacked arrays; ``set_state`` reads
    these so a worker's learned drift baselines survive the upgrade."""

    __slots__ = ("cur_win", "rivers", "state")


def _fresh_state() -> npt.NDArray[np.float64]:
    st = np.zeros((_ROWS, N_METRICS))
    st[_BASE_MEAN] = np.nan
    st[_CONFIRMED] = _NEVER  # window of the last confirmed drift
    _ph_reset(st, slice(None))
    return st


def _ph_reset(st: npt.NDArray[np.float64], k: int | slice) -> None:
    st[_PH_N:_PH_MIN_INC, k] = 0.0
    st[_PH_MIN_INC, k] = np.inf
    st[_PH_MAX_DEC, k] = -1.0
    st[_PH_DRIFT, k] = 0.0


_FRESH = _fresh_state()


def _window_sums(
    vals: npt.NDArray[np.float64], at: npt.NDArray[np.intp]
) -> npt.NDArray[np.float64]:
    """Count, sum and sum of squares of the non-NaN values (rows x metrics) of each
    run of rows starting at ``at``: (runs, 3, metrics). One summation order for the
    batched and the one-series path, so both give the same floats."""
    ok = ~np.isnan(vals)
    z = np.where(ok, vals, 0.0)
    return np.stack(
        [
            np.add.reduceat(ok.astype(np.float64), at, axis=0),
            np.add.reduceat(z, at, axis=0),
            np.add.reduceat(z * z, at, axis=0),
        ],
        axis=1,
    )


class PhParams(Protocol):
    @property
    def warmup_windows(self) -> int: ...


def _ph_update(
    st: npt.NDArray[np.float64],
    k: int,
    x: float,
    cfg: PhParams,
    threshold: float,
    alpha: float = 1 - 0.0001,
) -> bool:
    """River's PageHinkley(min_instances=warmup_windows, delta=0.5, threshold=threshold,
    mode="both").update, operation for operation (so the same floats), on column ``k``
    of ``st``."""
    if st[_PH_DRIFT, k]:
        _ph_reset(st, k)
    n = st[_PH_N, k] + 1.0
    mean = st[_PH_MEAN, k]
    mean += (1.0 / n) * (x - mean)
    st[_PH_N, k], st[_PH_MEAN, k] = n, mean
    dev = x - mean
    inc = alpha * st[_PH_INC, k] + dev - 0.5
    dec = alpha * st[_PH_DEC, k] + dev + 0.5
    st[_PH_INC, k], st[_PH_DEC, k] = inc, dec
    if inc < st[_PH_MIN_INC, k]:
        st[_PH_MIN_INC, k] = inc
    if dec > st[_PH_MAX_DEC, k]:
        st[_PH_MAX_DEC, k] = dec
    if n >= cfg.warmup_windows:
        up = inc - st[_PH_MIN_INC, k]
        down = st[_PH_MAX_DEC, k] - dec
        st[_PH_DRIFT, k] = float(up > threshold or down > threshold)
    return bool(st[_PH_DRIFT, k])


class DriftConfig(BudgetedConfig):
    window_s: float = Field(
        30.0,
        gt=0,
        description=(
            "Event-time window each series' events are folded into; one drift check per "
            "closed window."
        ),
    )
    # Page-Hinkley confirms a 2 sd shift within ~5 windows; ADWIN needs ~13.
    method: Literal["adwin", "kswin", "page_hinkley"] = Field(
        "page_hinkley",
        description=(
            "River drift detector that decides: Page-Hinkley confirms a 2 sd shift within "
            "~5 windows, ADWIN needs ~13."
        ),
    )
    effect_threshold: float = Field(
        1.0,
        gt=0,
        description=(
            "Effect size (window mean vs baseline, in baseline standard deviations) that "
            "scores 0.5."
        ),
    )  # baseline standard deviations
    baseline_alpha: float = Field(
        0.05, gt=0, le=1, description="Learning rate of the slow baseline, per closed window."
    )  # per closed window
    drifted_learning: float = Field(
        0.1,
        ge=0,
        le=1,
        description=(
            "Factor on baseline_alpha while a drift is confirmed, so an ongoing drift is "
            "absorbed slowly."
        ),
    )  # baseline_alpha factor while drifted
    warmup_windows: int = Field(
        5, ge=1, description="Closed windows a series' baseline learns from before it is scored."
    )
    min_events: int = Field(
        20,
        ge=1,
        description=(
            "Events a window needs for a full-weight score; thinner windows score "
            "proportionally less."
        ),
    )  # per window, for a full-weight score
    hold_windows: int = Field(
        5, ge=1, description="Windows a River drift stays confirmed after it was detected."
    )  # a River drift stays confirmed this long
    adwin_delta: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="ADWIN's confidence parameter (method adwin); smaller detects less. "
        "Unset (the default): the alert budget's share per check, budget / (metrics x "
        "windows per week).",
    )
    kswin_alpha: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="KSWIN's significance level (method kswin); smaller detects less. "
        "Unset (the default): the alert budget's share per check, budget / (metrics x "
        "windows per week).",
    )
    ph_threshold: float | None = Field(
        None,
        gt=0,
        description=(
            "Fixed Page-Hinkley threshold (method page_hinkley), in baseline standard "
            "deviations; unset (the default), it comes from the alert budget: the log of "
            "the in-control run length, in windows, the budget allows."
        ),
    )
    # A window whose mean is this many standard errors off the baseline (and at least
    # effect_threshold sd) is a drift on its own: River's multi-window confirmation is
    # for small shifts; a prompt mix that tripled is certain within one window.
    confirm_z: float = Field(
        8.0,
        gt=0,
        description=(
            "A window mean this many standard errors off the baseline (and at least "
            "effect_threshold) is a drift on its own, without River's multi-window "
            "confirmation."
        ),
    )
    seed: int = Field(
        0, description="Random seed of the River detectors, for reproducible replays."
    )
    series_ttl_s: float = Field(
        7 * 86400.0,
        gt=0,
        description="A series with no events for this long is forgotten (state freed).",
    )

    def page_hinkley_h(self, labels: Mapping[str, str]) -> float:
        """Page-Hinkley's threshold for a series: ``ph_threshold``, else the log of the run
        length its budget allows over its 2 x metrics one-sided tests, one per window."""
        if self.ph_threshold is not None:
            return self.ph_threshold
        tests = 2.0 * N_METRICS * WEEK_S / self.window_s
        return float(run_length_threshold(tests, self.budget_for(labels), 1.0))

    def check_q(self, labels: Mapping[str, str]) -> float:
        """The false-drift probability per check (one per metric per window) that keeps a
        series within its budget: budget / (metrics x windows per week)."""
        checks = N_METRICS * WEEK_S / self.window_s
        return min(self.budget_for(labels) / checks, 0.25)
