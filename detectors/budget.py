"""Alert budgets: firing decisions calibrated to an expected false-alert rate.

A fixed z threshold assumes Gaussian, stationary data; real metric series are
heavy-tailed, seasonal and step-changing, so the same z pages four times a day on
one series and never on another. A budget says instead how often a series may
page when nothing is wrong (``false_alerts_per_series_week``); each detector turns
it into a per-row tail probability ``q`` from the series' own sampling interval,
and fires when the series' own statistic is rarer than ``q`` under a tail fitted
to that series' history (``TailBank``: streaming peaks-over-threshold, see
``detectors.kernels.tail``). Scores stay in [0, 1] with 0.5 exactly at the budget:
``score = r / (1 + r)`` with ``r = log p / log q``.

Configuration, in any detector's section (``BudgetedConfig``)::

    alert_budget: {false_alerts_per_series_week: 0.5}
    alert_budget_overrides:
      - match: {env: staging}
        false_alerts_per_series_week: 3

The first override whose labels all match a series applies to it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from detectors.base import DetectorConfig
from detectors.kernels._base import _jit
from detectors.kernels.tail import LOGP_FLOOR, TAIL_COLUMNS, tail_update

WEEK_S = 7 * 86400.0
F64 = npt.NDArray[np.float64]


class AlertBudget(BaseModel):
    """How many false alerts one series may raise per week, on average."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    false_alerts_per_series_week: float = Field(
        0.5,
        gt=0,
        le=1000,
        description="False alerts one series may raise per week on average: the firing "
        "threshold (score 0.5) is set from each series' own score tails to this rate.",
    )


class BudgetOverride(AlertBudget):
    match: dict[str, str] = Field(
        min_length=1, description="Series labels (all must equal) this budget applies to."
    )


class BudgetedConfig(DetectorConfig):
    """A detector config with an alert budget, overridable per series label."""

    alert_budget: AlertBudget = Field(
        default_factory=AlertBudget, description="The detector's default alert budget."
    )
    alert_budget_overrides: list[BudgetOverride] = Field(
        default_factory=list,
        description="Budgets for series whose labels match; the first match wins.",
    )

    def budget_for(self, labels: Mapping[str, str]) -> float:
        for o in self.alert_budget_overrides:
            if all(labels.get(k) == v for k, v in o.match.items()):
                return o.false_alerts_per_series_week
        return self.alert_budget.false_alerts_per_series_week


def row_log_q(budget_per_week: float | F64, interval_s: float | F64) -> F64:
    """log of the per-row false-alert probability a budget allows at a sampling interval
    (alerts per week / rows per week), capped at 1/4 so a budget never means "always"."""
    q = np.asarray(budget_per_week, dtype=np.float64) * np.asarray(interval_s) / WEEK_S
    out: F64 = np.log(np.clip(q, 1e-300, 0.25))
    return out


@functools.lru_cache(maxsize=4096)
def budget_z(budget_per_week: float, interval_s: float) -> float:
    """The one-sided Gaussian z whose tail probability is a budget's per-evaluation ``q``
    at one independent evaluation per ``interval_s`` (a statistic's decorrelation time):
    the threshold of a z-scored statistic while its own tail is unknown or near normal.
    A threshold crossed with probability ``q`` per ``interval_s`` fires about
    ``budget_per_week`` times a week."""
    q = float(np.exp(row_log_q(budget_per_week, interval_s)))
    return -NormalDist().inv_cdf(q)


@_jit
def run_length_threshold(evals_per_week: float, budget_per_week: float, min_h: float) -> float:
    """The threshold, in log-likelihood-ratio units, of a sequential test (CUSUM,
    Page-Hinkley) evaluated ``evals_per_week`` times a series-week that raises at most
    ``budget_per_week`` false alerts a week: ``h = log(evals_per_week / budget)``, the log
    of the in-control run length the budget allows. When every increment ``l`` has
    ``E0[exp(l)] <= 1`` the run length to a false alarm is at least ``exp(h)`` (Lorden).
    Never below ``min_h`` (a series seen for a minute has no rate yet). Jitted: kernels
    call it too."""
    return max(math.log(max(evals_per_week / budget_per_week, 1.0)), min_h)


def budget_score(log_p: F64, log_q: F64) -> F64:
    """[0, 1] scores with 0.5 where the tail probability equals the budget's ``q``."""
    lp = np.minimum(np.nan_to_num(np.asarray(log_p, dtype=np.float64), nan=0.0), 0.0)
    r = lp / np.minimum(log_q, -1e-12)
    out: F64 = r / (1.0 + r)
    return out


class TailBank:
    """Per-series streaming tails of one statistic, for detectors that adopt budgets.

    ``update(ids, values, learn)`` returns each row's log tail probability under the
    series' tail before the row is learned (NaN while the series has fewer than
    ``min_n`` values); rows with ``learn`` false (an ongoing anomaly) are scored but
    not learned. State: ``TAIL_COLUMNS`` floats per series.
    """

    def __init__(
        self,
        capacity: int = 16,
        *,
        tail_p: float = 0.02,
        rate_alpha: float = 1 / 5000,
        peak_alpha: float = 1 / 200,
        min_n: int = 400,
    ) -> None:
        self.tail_p, self.rate_alpha, self.peak_alpha = tail_p, rate_alpha, peak_alpha
        self.min_n = float(min_n)
        self.st: F64 = np.zeros((TAIL_COLUMNS, capacity))

    def grow(self, capacity: int) -> None:
        if self.st.shape[1] < capacity:
            new = np.zeros((TAIL_COLUMNS, capacity))
            new[:, : self.st.shape[1]] = self.st
            self.st = new

    def reset(self, ids: npt.NDArray[np.int64]) -> None:
        self.st[:, ids] = 0.0

    def update(
        self, ids: npt.NDArray[np.int64], values: F64, learn: npt.NDArray[np.bool_] | None = None
    ) -> F64:
        self.grow(int(ids.max()) + 1 if ids.size else 0)
        mask = np.ones(ids.size, dtype=bool) if learn is None else np.asarray(learn, dtype=bool)
        out: F64 = tail_update(
            np.asarray(ids, dtype=np.int64),
            np.asarray(values, dtype=np.float64),
            mask,
            self.st,
            self.tail_p,
            self.rate_alpha,
            self.peak_alpha,
            self.min_n,
        )
        return out

    def state(self) -> dict[str, Any]:
        return {"st": self.st.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.st = np.array(state["st"], dtype=np.float64)


__all__ = [
    "LOGP_FLOOR",
    "AlertBudget",
    "BudgetOverride",
    "BudgetedConfig",
    "TailBank",
    "budget_score",
    "budget_z",
    "row_log_q",
    "run_length_threshold",
]
