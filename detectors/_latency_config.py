"""The ``latency`` detector's configuration (``detectors.latency`` has what it does)."""

from __future__ import annotations

from pydantic import Field, field_validator

from detectors.budget import BudgetedConfig

METRICS = ("latency_ms", "ttft_ms", "tpot_ms")


class LatencyConfig(BudgetedConfig):
    metrics: tuple[str, ...] = Field(
        METRICS, description="Event fields whose latency quantile is watched."
    )
    quantile: float = Field(
        0.99, gt=0, lt=1, description="The window quantile compared with the baseline (0.99 = p99)."
    )
    window_half_life_s: float = Field(
        60.0, gt=0, description="Half-life of the decayed sketch the window quantile comes from."
    )
    baseline_half_life_s: float = Field(
        3600.0, gt=0, description="Half-life of the slow baseline of the log quantile."
    )
    threshold_z: float | None = Field(
        None,
        gt=0,
        description="A fixed z of the window quantile against the baseline that scores 0.5 "
        "for every series; unset (the default): each series' z from its alert budget.",
    )
    confirm_s: float = Field(
        5.0,
        ge=0,
        description="Length of a confirmation segment: a slot over its threshold alerts once "
        "the rows of confirm_segments consecutive segments show the slowdown too.",
    )
    confirm_segments: int = Field(
        2,
        ge=0,
        description="Consecutive segments whose fresh rows must be slow before a slowdown "
        "alerts (0: alert as soon as the window quantile is over the threshold).",
    )
    min_rel_spread: float = Field(
        0.05,
        gt=0,
        description=(
            "Floor of the baseline's relative spread, so a very steady series does not "
            "page on noise."
        ),
    )
    min_window_count: float = Field(
        30.0, ge=1, description="Rows (decayed) a window needs before its quantile is judged."
    )
    # Rows expected above the quantile before a version window's quantile counts (p99:
    # 300 rows). Host windows are exempt: their verdicts localise version slowdowns to a
    # host (whose GPU alert then inhibits), and per-host traffic is thinner.
    min_tail_count: float = Field(
        3.0,
        ge=0,
        description=(
            "Rows expected above the quantile before a version window's quantile counts "
            "(p99: 300 rows)."
        ),
    )
    # Baseline rows before a verdict: a slot hovering at the tail-support limit learns
    # only sporadically, so event time alone does not make its spread trustworthy.
    min_baseline_weight: float = Field(
        300.0, ge=1, description="Baseline rows learned before a verdict."
    )
    max_freeze_s: float = Field(
        1800.0,
        gt=0,
        description=(
            "Longest the baseline stops learning during a slowdown; then the current "
            "level becomes the new normal."
        ),
    )
    # No verdicts until a baseline has this much event time behind it.
    warmup_s: float = Field(
        180.0, ge=0, description="No verdicts until a baseline has this much event time behind it."
    )
    # Take the slowdown common to the family (load: its median) off every series
    # before scoring.
    common_mode: bool = Field(
        True,
        description=(
            "Take the slowdown common to the whole family (load) off every series before scoring."
        ),
    )
    common_quantile: float = Field(
        0.5,
        ge=0,
        le=1,
        description=("Quantile of the family's slowdowns taken as the common part (0.5 = median)."),
    )
    min_peers: int = Field(
        3, ge=1, description="Series a family needs before its common slowdown is taken off."
    )
    # A slowdown must also be at least this large (relative) to count.
    min_rel_effect: float = Field(
        0.3, ge=0, description="A slowdown must also be at least this large (relative) to count."
    )
    relative_accuracy: float = Field(
        0.03, gt=0, lt=0.5, description="Relative accuracy of the log-bucket quantile sketch."
    )
    n_buckets: int = Field(
        64,
        ge=8,
        le=4096,
        description=("Buckets per sketch (with relative_accuracy, the latency range covered)."),
    )
    host_level: bool = Field(
        True,
        description=(
            "Also watch (host, model) series where gateways report the serving host, so a "
            "slow host is named."
        ),
    )
    series_ttl_s: float = Field(
        86400.0,
        gt=0,
        description="A series with no events for this long is forgotten (state freed).",
    )

    @field_validator("metrics")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(v) - set(METRICS))
        if unknown or not v:
            raise ValueError(f"unknown or no metrics {unknown}; known: {list(METRICS)}")
        return v
