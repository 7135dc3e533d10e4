"""The ``error_rate`` detector's configuration (``detectors.error_rate`` has what it does)."""

from __future__ import annotations

from pydantic import Field

from detectors.budget import BudgetedConfig


class ErrorRateConfig(BudgetedConfig):
    window_half_life_s: float = Field(
        120.0,
        gt=0,
        description="Half-life of the fast window whose error and timeout rates are judged.",
    )
    baseline_half_life_s: float = Field(
        6 * 3600.0,
        gt=0,
        description="Half-life of the slow baseline rate the window is compared with.",
    )
    rate_factor: float = Field(
        3.0, ge=1, description="Alert level is at least this many times the baseline rate."
    )
    min_abs_rate: float = Field(
        0.02,
        ge=0,
        le=1,
        description=(
            "Alert level is at least the baseline rate plus this absolute rate (0.02 = 2 points)."
        ),
    )
    confidence_z: float | None = Field(
        None,
        gt=0,
        description=(
            "A fixed z of the Wilson lower bound on the window's rate for every series; "
            "unset (the default): each series' z from its alert budget."
        ),
    )
    min_requests: float = Field(
        10.0, ge=1, description="Requests (decayed) the window needs before it is judged."
    )
    # 0 turns the burst window off.
    burst_half_life_s: float = Field(
        5.0,
        ge=0,
        description=(
            "Half-life of the burst window, judged beside the fast one to catch sudden "
            "failure bursts; 0 turns it off."
        ),
    )
    burst_confidence_z: float | None = Field(
        None,
        gt=0,
        description=(
            "A fixed z of the Wilson lower bound for the burst window; unset (the default): "
            "from the alert budget at one evaluation per burst half-life."
        ),
    )
    burst_min_requests: float = Field(
        50.0, ge=1, description="Requests (decayed) the burst window needs before it is judged."
    )
    prior_rate: float = Field(
        0.005, ge=0, le=1, description="Prior error rate the baseline starts from (beta smoothing)."
    )
    prior_requests: float = Field(200.0, gt=0, description="Weight of prior_rate, in requests.")
    # Rows scoring at least this statistic (1.0 == alert level) are not learned.
    learn_gate: float = Field(
        0.5,
        gt=0,
        description=(
            "Rows whose statistic is at least this (1.0 = alert level) are not learned by "
            "the baseline."
        ),
    )
    max_freeze_s: float = Field(
        3600.0,
        gt=0,
        description=(
            "Longest the baseline stops learning during a raised rate; then the current "
            "rate becomes the new normal."
        ),
    )
    series_ttl_s: float = Field(
        86400.0,
        gt=0,
        description="A series with no events for this long is forgotten (state freed).",
    )
