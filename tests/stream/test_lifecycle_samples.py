"""Sparse series: rules that count samples as well as seconds, and alerts whose
severity, numbers and explanation are fixed for their episode."""

from __future__ import annotations

from typing import Any

import pytest

from detectors.base import Finding
from schemas.models import AlertStatus
from stream.config import ConfigError, parse_config
from stream.lifecycle import Lifecycle
from stream.lifecycle_config import LifecycleConfig
from tests.stream.lifecycle_helpers import T0, finding, lifecycle

FIVE_MIN = 300.0


def sampled(**cfg: Any) -> Lifecycle:
    """The shipped sample rules (the helper turns them off), with ``cfg`` laid over."""
    defaults = {"for_s": 30.0, "for_samples": 2, "keep_firing_for_samples": 1}
    return lifecycle(
        **{
            "defaults": defaults,
            "resolve_timeout_samples": 3,
            "flap_window_samples": 12,
            **cfg,
        }
    )


def ranged(score: float, observed: float, band: tuple[float, float, float], **kw: Any) -> Finding:
    """A finding of ``observed`` against ``band`` (expected, lower, upper), its text
    saying which side of the range it is on, as the series detector's does."""
    expected, lower, upper = band
    side = "above" if observed > upper else "below" if observed < lower else "within"
    return finding(
        score, observed=observed, expected=expected, lower=lower, upper=upper,
        explanation=f"q at {observed:g} is {side} its expected range {lower:g} to {upper:g}",
        **kw,
    )  # fmt: skip


def test_one_point_of_a_sparse_series_does_not_fire() -> None:
    lc = sampled()
    assert lc.observe([finding()], T0) == []
    assert lc.advance(T0 + 299) == []  # for_s passed long ago; a second sample has not
    (fired,) = lc.observe([finding()], T0 + FIVE_MIN)
    assert fired.status == AlertStatus.FIRING
    assert fired.starts_at.timestamp() == T0


def test_on_a_dense_stream_the_seconds_bind() -> None:
    lc = sampled()
    for i in range(30):
        assert lc.observe([finding()], T0 + i) == []  # 30 samples, 29 s
    assert [e.status for e in lc.observe([finding()], T0 + 30)] == [AlertStatus.FIRING]


def test_a_lone_spike_is_forgotten_when_the_next_point_is_normal() -> None:
    lc = sampled()
    lc.observe([finding()], T0)
    assert lc.observe([finding(0.0, anomalous=False)], T0 + FIVE_MIN) == []
    assert lc.pending() == [] and lc.advance(T0 + 3600) == []


def test_keep_firing_for_and_timeout_stretch_to_the_learned_interval() -> None:
    lc = sampled()
    lc.observe([finding()], T0)
    lc.observe([finding()], T0 + FIVE_MIN)  # fires; interval 300 s learned
    lc.observe([finding(0.0, anomalous=False)], T0 + 2 * FIVE_MIN)
    # keep_firing_for_s is 0, but one interval of samples: the next point decides.
    assert lc.advance(T0 + 3 * FIVE_MIN - 1) == []
    (resolved,) = lc.advance(T0 + 3 * FIVE_MIN)
    assert resolved.annotations["resolved_reason"] == "recovered"
    # A new episode of the same series remembers the interval: its timeout is 3 x 300 s,
    # not resolve_timeout_s (300 s), which one late point would otherwise trip.
    lc.observe([finding()], T0 + 10 * FIVE_MIN)
    lc.observe([finding()], T0 + 11 * FIVE_MIN)
    assert lc.advance(T0 + 11 * FIVE_MIN + 899) == []
    (timed_out,) = lc.advance(T0 + 11 * FIVE_MIN + 900)
    assert timed_out.annotations["resolved_reason"] == "timeout"


def test_flap_window_stretches_to_samples() -> None:
    # 4 starts within 16 intervals (80 min of 5-minute points) is flapping even though
    # they span far more than flap_window_s.
    lc = sampled(flap_window_s=600.0, flap_window_samples=16)
    t = T0
    events = []
    for _ in range(4):
        events += lc.observe([finding()], t)
        events += lc.observe([finding()], t + FIVE_MIN)
        events += lc.observe([finding(0.0, anomalous=False)], t + 2 * FIVE_MIN)
        events += lc.advance(t + 3 * FIVE_MIN)
        t += 4 * FIVE_MIN
    statuses = [e.status for e in events]
    assert statuses.count(AlertStatus.FIRING) == 4
    assert statuses.count(AlertStatus.RESOLVED) == 3  # the fourth is held: flapping
    assert lc.active_alerts()[0].annotations["flapping"] == "true"


def test_ticks_are_not_samples() -> None:
    lc = sampled()
    lc.observe([finding()], T0, sampled=False)
    assert lc.observe([finding()], T0 + 60, sampled=False) == []
    assert lc.pending()  # still waiting for data


def test_firing_alert_keeps_the_severity_numbers_and_text_it_fired_with() -> None:
    lc = lifecycle()
    first = ranged(0.9, 95.0, (80.0, 70.0, 90.0), severity="error")
    later = ranged(0.45, 89.0, (82.0, 72.0, 92.0), anomalous=True, severity="warning")
    (fired,) = lc.observe([first], T0)
    assert lc.observe([later], T0 + 10) == []  # in the hysteresis band: still firing
    (resolved,) = lc.observe([finding(0.0, anomalous=False, severity="info")], T0 + 20)
    for field in ("severity", "score", "observed", "expected", "bounds", "explanation"):
        assert getattr(resolved, field) == getattr(fired, field), field
    assert resolved.severity == "error"
    assert lc.active_alerts() == []


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"defaults": {"for_samples": 0}}, "for_samples"),
        ({"rules": {"series": {"keep_firing_for_samples": -1}}}, "keep_firing_for_samples"),
        ({"flap_window_samples": 1.5}, "flap_window_samples"),
        ({"resolve_timeout_samples": "x"}, "resolve_timeout_samples"),
    ],
)
def test_bad_sample_rules_name_the_field(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"lifecycle": section})


def test_shipped_sample_rules() -> None:
    cfg = LifecycleConfig()
    assert cfg.defaults.for_samples == 2 and cfg.defaults.keep_firing_for_samples == 1
    # Absence is judged in time; feedback's CUSUM already weighs many ratings.
    assert cfg.rule_for("traffic").for_samples == 1
    assert cfg.rule_for("feedback").for_samples == 1
    assert cfg.rule_for("series").for_samples == 2


def test_a_sparse_spike_fires_with_its_own_numbers_not_the_next_samples() -> None:
    # A 5-minute series: the spike crosses; the next sample is back inside its range but
    # still in the detector's episode (same score), and the alert fires on it
    # (for_samples 2). The page says where the spike went.
    lc = sampled()
    spike = ranged(0.7, 140.0, (100.0, 90.0, 110.0))
    after = ranged(0.7, 101.0, (100.0, 90.0, 110.0))
    assert lc.observe([spike], T0) == []
    (fired,) = lc.observe([after], T0 + FIVE_MIN)
    assert fired.status == AlertStatus.FIRING and fired.observed == 140.0
    assert fired.explanation == spike.explanation


def test_a_worse_finding_while_pending_is_what_fires() -> None:
    lc = sampled()
    lc.observe([finding(0.6, observed=120.0, explanation="q at 120")], T0)
    (fired,) = lc.observe([finding(0.9, observed=180.0, explanation="q at 180")], T0 + FIVE_MIN)
    assert fired.observed == 180.0 and fired.score == 0.9 and fired.explanation == "q at 180"


@pytest.mark.parametrize("interval", [600.0, 3600.0])
def test_a_series_slower_than_the_timeout_fires_when_its_detector_gives_the_interval(
    interval: float,
) -> None:
    # Before its second finding the lifecycle knows no interval, so a pending alert
    # times out after resolve_timeout_s (300 s): on a 10-minute or hourly series every
    # pending alert died before its second sample. The detector's interval counts.
    lc = sampled()
    lc.observe([finding(interval_s=interval)], T0)
    assert lc.advance(T0 + interval - 1) == [] and lc.pending()
    (fired,) = lc.observe([finding(interval_s=interval)], T0 + interval)
    assert fired.status == AlertStatus.FIRING and fired.starts_at.timestamp() == T0
    # ... and it still times out when the series stops: three intervals of silence.
    assert lc.advance(T0 + 4 * interval - 1) == []
    (gone,) = lc.advance(T0 + 4 * interval)
    assert gone.annotations["resolved_reason"] == "timeout"


def test_without_an_interval_a_pending_alert_times_out_in_seconds() -> None:
    lc = sampled()
    lc.observe([finding()], T0)
    assert lc.advance(T0 + 300) == [] and lc.pending() == []
