"""Explanations tell the truth: every claim a finding's text makes agrees with its own
``observed``, ``expected`` and bounds, for every detector (found as the contract test
finds them) on its contract case under many seeds. The checker (``claims``) reads
phrases, not templates, so a rewritten detector is held to it unchanged."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.base import Finding
from tests.detectors.claims import problems
from tests.detectors.test_contract import CLASSES, SEED, load_case_module, run


def finding(text: str, observed: float, expected: float, lower: float, upper: float) -> Finding:
    return Finding(
        "d", "k", {"series": "s"}, 0.0, 0.9, True, observed, expected, lower, upper,
        explanation=text,
    )  # fmt: skip


def test_the_resolved_temperature_alert_from_the_issue_is_caught() -> None:
    # "at 90.5 is outside its baseline 81.3 (+/-2.03)" with bounds 71.1-91.4: 90.5 is
    # inside them, and +/-2.03 is one standard deviation, not the band.
    f = finding(
        "temperature at 90.5 is outside its baseline 81.3 (+/-2.03)", 90.5, 81.3, 71.1, 91.4
    )
    found = list(problems(f))
    assert any("outside its baseline" in p for p in found)
    assert any("+/-" in p for p in found)


@pytest.mark.parametrize(
    ("text", "observed", "claim"),
    [
        ("q at 208 is above its expected range 53.6 to 186 (expected 120)", 150.0, "above"),
        ("q at 40 is below its expected range 53.6 to 186", 60.0, "below"),
        ("q at 300 is within its expected range 53.6 to 186", 300.0, "within"),
        ("q at 209 is above its expected range 53.6 to 186", 208.3, "at 209"),
        ("q at 208 is above its expected range 53 to 186", 208.3, "range"),
        ("q at 208 vs baseline 121 ms", 208.3, "baseline"),
    ],
)
def test_each_kind_of_claim_is_checked(text: str, observed: float, claim: str) -> None:
    f = finding(text, observed, 119.75, 53.607, 185.893)
    assert any(claim in p for p in problems(f)), text


@pytest.mark.parametrize(
    ("text", "observed"),
    [
        ("q at 208 is above its expected range 53.6 to 186 (expected 120)", 208.3),
        # fields in ms, text in s and ms: one scale fits every number of a claim
        ("p99 3.61 s vs baseline 120 ms (normal range 53.6 ms to 186 ms)", 3611.97),
        ("error rate 6.9% vs baseline 12,000% over 53.6 to 186", 0.069),  # no claims
        ("q back within range", 100.0),
    ],
)
def test_true_claims_pass(text: str, observed: float) -> None:
    f = finding(text, observed, 120.004, 53.607, 185.893)
    assert list(problems(f)) == [], text


@pytest.mark.parametrize("name", sorted(CLASSES))
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16))
def test_every_detectors_explanations_agree_with_its_numbers(name: str, seed: int) -> None:
    batches, _ = load_case_module(name).make_case(seed)
    det: Any = CLASSES[name]()
    for out in run(det, batches):
        for f in out.findings:
            check(name, f)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_the_contract_case_gives_findings_to_check(name: str) -> None:
    """The property above is not vacuous: each contract case (anomalies injected)
    makes its detector explain something."""
    batches, _ = load_case_module(name).make_case(SEED)
    findings = [f for out in run(CLASSES[name](), batches) for f in out.findings]
    assert findings
    for f in findings:
        check(name, f)


def check(name: str, f: Finding) -> None:
    assert f.explanation, f"{name}: a finding without an explanation"
    bad = list(problems(f))
    assert not bad, f"{name}: {f.explanation!r}: {bad}"
    if f.lower is not None and f.upper is not None and math.isfinite(f.lower):
        assert f.lower <= f.upper, f"{name}: bounds out of order in {f}"
