"""The ``traffic`` detector's configuration (``detectors.traffic`` has what it does)."""

from __future__ import annotations

from pydantic import Field

from detectors.budget import BudgetedConfig


class TrafficConfig(BudgetedConfig):
    silence_factor: float | None = Field(
        None,
        gt=1,
        description=(
            "A fixed number of expected inter-arrival gaps without an event after which a "
            "series is silent; unset (the default): from each series' alert budget and gap."
        ),
    )
    min_silence_s: float = Field(
        20.0, ge=0, description="Shortest silence that is reported, whatever the expected gap."
    )
    gap_alpha: float = Field(
        0.01, gt=0, le=1, description="Learning rate of the expected inter-arrival gap, per event."
    )
    min_events: float = Field(
        30.0, ge=2, description="Events a series needs before its silence is judged."
    )
    bin_s: float = Field(
        60.0, gt=0, description="Width of the request-count bins the rate-collapse check uses."
    )
    threshold_z: float | None = Field(
        None,
        gt=0,
        description=(
            "A fixed drop (variance-stabilised z below the seasonal baseline) that scores 0.5; "
            "unset (the default): from each series' alert budget at one test per bin."
        ),
    )
    seasonal_alpha: float = Field(
        0.2, gt=0, le=1, description="Learning rate of the hour-of-week baseline, per bin."
    )
    level_alpha: float = Field(
        0.05,
        gt=0,
        le=1,
        description=(
            "Learning rate of the overall level used until a seasonal bucket has history."
        ),
    )
    min_bins: float = Field(
        10.0, ge=1, description="Closed bins a series needs before its rate is judged."
    )
    max_empty_bins: int = Field(
        1440,
        ge=1,
        description=(
            "Longest run of empty bins filled in after a gap; a longer gap restarts the count."
        ),
    )
    series_ttl_s: float = Field(
        7 * 86400.0,
        gt=0,
        description="A series with no events for this long is forgotten (state freed).",
    )
    # A heartbeat per whole gateway as well as per (model, gateway). Off by default:
    # the service keys events by model (schemas/keys.py), so a worker engine sees only
    # some of a gateway's models, and each would fire its own gateway alert from a
    # partial baseline. A silent gateway still shows as every one of its series going
    # silent. Safe to turn on where one engine sees everything (offline replay).
    gateway_level: bool = Field(
        False,
        description=(
            "Also watch each whole gateway's heartbeat; only where one engine sees all of "
            "a gateway's models (offline replay)."
        ),
    )


# Per series (and per gateway): last event time, and the expected gap and its weight.
