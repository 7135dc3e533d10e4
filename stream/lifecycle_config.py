"""Configuration of the alert lifecycle: timers, thresholds, grouping, inhibition, links.

Every duration is in seconds of event time. Per-detector rules override the
defaults field by field, so a config only names what differs.

Durations on sparse series. A rule written for a 1-second stream (``for: 30s``) would
judge a 5-minute series on one point. So each duration also has a form in *samples*,
and the stricter form applies:

* ``for_s`` / ``for_samples``: pending fires once the condition has held ``for_s``
  seconds *and* been seen in ``for_samples`` data findings (the one that opened it
  counts). On a dense stream the seconds bind; on a 5-minute series, the samples.
* ``keep_firing_for_s`` / ``keep_firing_for_samples``, ``resolve_timeout_s`` /
  ``resolve_timeout_samples``, ``flap_window_s`` / ``flap_window_samples``: the longer
  of the seconds and that many sampling intervals. A series' sampling interval is
  the detector's (``Finding.interval_s``, e.g. the series detector's), else learned by
  the lifecycle, per alert fingerprint, from the shortest gap between its data
  findings; until it is known only the seconds apply. Findings from ticks (absence
  checks) are not samples: absence is judged in time.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas.durations import AS_DURATION

# One inhibit rule type: the notifier's (stream/alerting); here only to validate old files.
from stream.alerting.inhibit import InhibitRule

# Seconds, also written as "90s", "1h30m", "2d" (schemas.durations).
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False), AS_DURATION]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False), AS_DURATION]
Unit = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Samples = Annotated[int, Field(ge=1, le=1_000_000)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertRule(_Section):
    """How one detector's findings become alerts."""

    # Pending -> firing once the condition has held this long (Prometheus ``for``) and
    # been seen in this many data findings.
    for_s: Seconds = Field(
        30.0,
        description=(
            "Pending turns firing once the condition has held this long (Prometheus for) "
            "and for_samples findings."
        ),
    )
    for_samples: Samples = Field(
        2,
        description=(
            "Data findings that must show the condition (the first included) before "
            "pending turns firing; binds on sparse series."
        ),
    )
    # A firing alert whose condition cleared keeps firing this long (``keep_firing_for``,
    # counted from the finding that cleared it):
    # the longer of the seconds and this many sampling intervals. One interval is a
    # hysteresis in samples: a sparse series must stay normal up to its next point.
    keep_firing_for_s: Seconds = Field(
        0.0,
        description=(
            "A firing alert whose condition cleared keeps firing this long (Prometheus "
            "keep_firing_for)."
        ),
    )
    keep_firing_for_samples: Count = Field(
        1,
        description=(
            "Keep firing at least this many sampling intervals of the series too (the "
            "longer of the two applies)."
        ),
    )
    # Hysteresis: fire at score >= fire_threshold, resolve only below resolve_threshold.
    fire_threshold: Unit = Field(
        0.5,
        description=(
            "Score at or above which a finding counts as firing (0.5 = the detector's own "
            "threshold)."
        ),
    )
    resolve_threshold: Unit = Field(
        0.35,
        description=(
            "A firing alert resolves only once the score is below this (hysteresis); at "
            "most fire_threshold."
        ),
    )
    # str.format templates; fields: alertname, detector, fingerprint, and every label.
    runbook_url: str | None = Field(
        None,
        description=(
            "Runbook link template (str.format; fields: alertname, detector, fingerprint "
            "and every label)."
        ),
    )
    dashboard_url: str | None = Field(
        None, description="Dashboard link template, formatted like runbook_url."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.resolve_threshold > self.fire_threshold:
            raise ValueError(
                f"resolve_threshold ({self.resolve_threshold}) must not exceed "
                f"fire_threshold ({self.fire_threshold})"
            )
        return self


class AlertRuleOverride(_Section):
    """A per-detector rule: any field left out takes the default rule's value."""

    for_s: Seconds | None = Field(None, description="Overrides defaults.for_s for this detector.")
    for_samples: Samples | None = Field(
        None, description="Overrides defaults.for_samples for this detector."
    )
    keep_firing_for_s: Seconds | None = Field(
        None, description="Overrides defaults.keep_firing_for_s for this detector."
    )
    keep_firing_for_samples: Count | None = Field(
        None, description="Overrides defaults.keep_firing_for_samples for this detector."
    )
    fire_threshold: Unit | None = Field(
        None, description="Overrides defaults.fire_threshold for this detector."
    )
    resolve_threshold: Unit | None = Field(
        None, description="Overrides defaults.resolve_threshold for this detector."
    )
    runbook_url: str | None = Field(
        None, description="Overrides defaults.runbook_url for this detector."
    )
    dashboard_url: str | None = Field(
        None, description="Overrides defaults.dashboard_url for this detector."
    )


def default_rules() -> dict[str, AlertRuleOverride]:
    # These detectors' findings are persistent by construction, so a shorter wait than
    # the default 30 s: GPU findings (a throttled share of 20 samples, a memory trend
    # over 10+ samples, an XID that is an incident on its own; a fast leak fills a GPU
    # in under a minute) and silences (already min_silence_s and 15 expected gaps long).
    # A config file's ``rules`` are laid over these field by field (see ``_over_defaults``).
    # Feedback's CUSUM is itself the persistence check (evidence accumulated over many
    # ratings, held with hysteresis), so a further wait only adds delay.
    # Traffic's findings come from ticks (absence), which are not samples; feedback's
    # CUSUM already needs many ratings: neither waits for a second data finding.
    return {
        "gpu_health": AlertRuleOverride(for_s=10.0),
        "traffic": AlertRuleOverride(for_s=10.0, for_samples=1),
        "feedback": AlertRuleOverride(for_s=0.0, for_samples=1),
    }


class GroupingConfig(_Section):
    """Read but not used by the worker: grouping is the notifier's (its route's group_by,
    group_wait, group_interval, repeat_interval; docs/notifier.md). Kept so existing
    config files still load."""

    # ["..."] groups by every label, i.e. one notification group per alert.
    group_by: list[str] = Field(
        default_factory=lambda: ["detector", "alertname"],
        description=(
            'Labels that make one notification group; ["..."] groups by every label (one '
            "group per alert)."
        ),
    )
    group_wait_s: Seconds = Field(
        30.0,
        description=("How long a new group waits for more alerts before its first notification."),
    )
    group_interval_s: Positive = Field(
        300.0, description="Least time between notifications of a group that changed."
    )
    repeat_interval_s: Positive = Field(
        4 * 3600.0, description="A group that did not change is notified again after this long."
    )


# Accepted so older files load, read by nothing: the notifier owns these (docs/notifier.md).
IGNORED = {
    "grouping": "grouping is the notifier's (its route's group_by, group_wait, group_interval, "
    "repeat_interval)",
    "ack_ttl_s": "acknowledgements are the notifier's (default_ack_ttl_s in its config)",
    "silence_retention_s": "silences are the notifier's (the compacted silences topic)",
    "inhibit_rules": "inhibition is the notifier's (inhibit_rules in its config, docs/notifier.md)",
}


class LifecycleConfig(_Section):
    defaults: AlertRule = Field(
        default_factory=AlertRule,
        description="The rule every detector follows unless rules overrides it.",
    )
    rules: dict[str, AlertRuleOverride] = Field(
        default_factory=default_rules,
        description=(
            "Per-detector rules by detector name; each field overrides defaults (shipped: "
            "gpu_health and traffic for_s 10, feedback for_s 0)."
        ),
    )
    # A pending/firing alert whose series stops reporting is resolved after this long.
    resolve_timeout_s: Positive = Field(
        300.0,
        description=(
            "A pending or firing alert whose series stops reporting resolves after this long."
        ),
    )
    resolve_timeout_samples: Count = Field(
        3,
        description=(
            "Wait at least this many sampling intervals of the series too before that "
            "timeout (the longer applies)."
        ),
    )
    # Flap suppression: once a fingerprint has started firing ``flap_threshold`` times
    # within ``flap_window_s`` (or ``flap_window_samples`` intervals, the longer), it is
    # held firing instead of resolving and refiring.
    flap_window_s: Positive = Field(
        3600.0,
        description=(
            "Flap suppression: an alert that started firing flap_threshold times within "
            "this window is held firing."
        ),
    )
    flap_window_samples: Count = Field(
        12,
        description=(
            "The flap window is at least this many sampling intervals of the series (the "
            "longer applies)."
        ),
    )
    flap_threshold: Annotated[int, Field(ge=2)] = Field(
        4, description="Starts within flap_window_s that make an alert flapping."
    )
    grouping: GroupingConfig = Field(
        default_factory=GroupingConfig, description="How alerts are grouped into notifications."
    )
    inhibit_rules: list[InhibitRule] = Field(
        default_factory=list,
        description=(
            "Unused (inhibition belongs to the notifier: inhibit_rules in its config); "
            "still validated, so older files load or fail naming the rule."
        ),
    )
    # Acknowledgements expire after this long unless the alert resolves first.
    # ack_ttl_s and silence_retention_s: unused since silences and acks are the notifier's
    # (default_ack_ttl_s in its config); kept so existing config files still load.
    ack_ttl_s: Positive = Field(
        24 * 3600.0,
        description=(
            "Unused (acknowledgements belong to the notifier: default_ack_ttl_s in its "
            "config); kept so older files load."
        ),
    )
    # Expired silences are kept this long (for audit) before they are forgotten.
    silence_retention_s: Seconds = Field(
        5 * 86400.0,
        description="Unused (silences belong to the notifier); kept so older files load.",
    )

    def ignored(self) -> list[str]:
        """Settings this file sets that nothing reads any more (kept so it still loads)."""
        return [
            f"lifecycle.{name}: {why}"
            for name, why in IGNORED.items()
            if name in self.model_fields_set
        ]

    def rule_for(self, detector: str) -> AlertRule:
        override = self.rules.get(detector)
        if override is None:
            return self.defaults
        update = override.model_dump(exclude_none=True)
        return AlertRule.model_validate({**self.defaults.model_dump(), **update})

    @field_validator("rules", mode="before")
    @classmethod
    def _over_defaults(cls, value: Any) -> Any:
        # A user who tunes one detector's rule must not silently lose the shipped rules
        # of the others, nor the fields of that rule they did not mention.
        if not isinstance(value, dict):
            return value  # the type error is reported by validation
        merged: dict[str, Any] = {
            k: v.model_dump(exclude_none=True) for k, v in default_rules().items()
        }
        for name, rule in value.items():
            if isinstance(rule, AlertRuleOverride):
                rule = rule.model_dump(exclude_none=True)
            base = merged.get(name)
            merged[name] = {**base, **rule} if isinstance(rule, dict) and base else rule
        return merged

    @field_validator("rules")
    @classmethod
    def _rules_valid(
        cls, rules: dict[str, AlertRuleOverride], info: ValidationInfo
    ) -> dict[str, AlertRuleOverride]:
        defaults = info.data.get("defaults")
        if defaults is None:  # defaults failed on their own; that error is reported
            return rules
        for name, override in rules.items():
            merged = {**defaults.model_dump(), **override.model_dump(exclude_none=True)}
            try:
                AlertRule.model_validate(merged)
            except ValidationError as exc:
                msgs = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
                raise ValueError(f"{name}: {msgs}") from None
        return rules
