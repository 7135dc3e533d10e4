"""The ``slo_burn`` detector's configuration: SLO targets and multi-window burn rules."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from detectors.base import DetectorConfig
from schemas.columns import STATUS_CODES


class BurnRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    long_s: float = Field(gt=0)
    short_s: float = Field(gt=0)
    factor: float = Field(gt=0)
    severity: Literal["critical", "error", "warning", "info"] = "critical"


DEFAULT_RULES = (
    BurnRule(long_s=3600, short_s=300, factor=14.4, severity="critical"),
    BurnRule(long_s=6 * 3600, short_s=1800, factor=6.0, severity="critical"),
    BurnRule(long_s=3 * 86400, short_s=6 * 3600, factor=1.0, severity="warning"),
)


class SloBurnConfig(DetectorConfig):
    availability_target: float = Field(
        0.999,
        gt=0,
        lt=1,
        description="Share of requests that must not fail (status in bad_statuses).",
    )
    latency_target: float = Field(
        0.99,
        gt=0,
        lt=1,
        description="Share of requests that must be faster than latency_threshold_ms.",
    )
    # TTFT by default: end-to-end latency grows with the answer's length (a 2k-token answer
    # takes a minute on a healthy server), so a fixed end-to-end bound burns budget on
    # long answers, not on slow service.
    latency_metric: Literal["ttft_ms", "latency_ms"] = Field(
        "ttft_ms",
        description=(
            "Event field the latency SLO is measured on (TTFT: end-to-end grows with "
            "answer length)."
        ),
    )
    latency_threshold_ms: float = Field(
        5_000.0,
        gt=0,
        description="A request slower than this (in latency_metric) spends latency budget.",
    )
    bad_statuses: tuple[str, ...] = Field(
        ("error", "timeout"), description="Request statuses that spend availability budget."
    )
    rules: tuple[BurnRule, ...] = Field(
        DEFAULT_RULES,
        description=(
            "Multi-window burn-rate rules: long and short window, burn factor and "
            "severity (the SRE workbook's defaults)."
        ),
    )
    # Finest bin; a window is summed from the coarsest bins that still give it at least
    # ``bins_per_window`` of them (1 h from 2-minute bins, 3 d from 3-hour bins), so
    # state stays ~1.4 KB per series and a window's edge is at most 1/bins of it early.
    bucket_s: float = Field(60.0, gt=0, description="Finest time bin of the burn-rate windows.")
    bins_per_window: int = Field(
        24,
        ge=1,
        le=1440,
        description="Fewest bins a window is summed from (coarser bins for longer windows).",
    )
    # Below this many requests in a short window the rule stays quiet: 1 of 3 failing
    # is not a burn rate anyone should be paged for.
    min_requests: int = Field(
        10, ge=1, description="Requests a short window needs before its rule can fire."
    )
    # A rule speaks only once the series has data for this fraction of its long window:
    # two failures in the first minute are not a three-day burn.
    min_coverage: float = Field(
        0.25,
        ge=0,
        le=1,
        description=("Share of a rule's long window that must have data before the rule speaks."),
    )
    series_ttl_s: float = Field(
        7 * 86400.0,
        gt=0,
        description="A series with no events for this long is forgotten (state freed).",
    )

    @field_validator("bad_statuses")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(v) - set(STATUS_CODES))
        if unknown:
            raise ValueError(f"unknown status {unknown}; known: {sorted(STATUS_CODES)}")
        return v

    @field_validator("rules")
    @classmethod
    def _short_within_long(cls, v: tuple[BurnRule, ...]) -> tuple[BurnRule, ...]:
        if not v:
            raise ValueError("at least one burn rule is needed")
        for r in v:
            if r.short_s > r.long_s:
                raise ValueError(f"short window {r.short_s} s exceeds long window {r.long_s} s")
        return v
