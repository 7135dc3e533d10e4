"""Stage 1, the route tree: Alertmanager's semantics, inherited grouping options."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stream.alerting.route import Route, Router
from stream.notify.config import parse_config

TREE = {
    "receiver": "default",
    "group_by": ["alertname"],
    "routes": [
        {"receiver": "audit", "continue": True, "group_by": ["..."]},
        {
            "matchers": ['severity=~"critical|error"', "team!=sandbox"],
            "receiver": "pager",
            "group_wait": "10s",
            "routes": [
                {"matchers": ["model=~llama-.*"], "receiver": "slack-ml", "continue": True},
                {"matchers": ["gateway=gw-eu-1"], "repeat_interval": "1h"},
            ],
        },
        {"matchers": ["team=infra"], "receiver": "slack-infra"},
        {"matchers": ['detector!~"drift_.*"']},
    ],
}


def _labels(**extra: str) -> dict[str, str]:
    base = {
        "alertname": "latency.ttft_p99",
        "severity": "critical",
        "detector": "latency",
        "model": "llama-70b",
        "gateway": "gw-eu-1",
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v != "-"}


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # audit (continue), pager branch -> slack-ml (continue) then the gw child (pager)
        (_labels(), ["audit", "slack-ml", "pager"]),
        (_labels(model="mistral", gateway="gw-us"), ["audit", "pager"]),
        # As in Alertmanager, a matching `continue` child counts: no fallback to the root.
        (_labels(team="sandbox", model="x", detector="drift_kl"), ["audit"]),
        (_labels(severity="warning", team="infra"), ["audit", "slack-infra"]),
        (_labels(severity="info", model="-", gateway="-"), ["audit", "default"]),
        (_labels(severity="info", model="-", gateway="-", detector="drift_psi"), ["audit"]),
    ],
)
def test_tree_cases(labels: dict[str, str], expected: list[str]) -> None:
    assert Router(Route.model_validate(TREE)).receivers_for(labels) == expected


def test_grouping_options_are_inherited_and_keyed_by_route() -> None:
    router = Router(Route.model_validate(TREE))
    audit, ml, gw = router.match(_labels())
    assert audit.group_by == ("...",) and audit.group_wait_s == 30.0
    assert ml.group_by == ("alertname",) and ml.group_wait_s == 10.0
    assert (gw.receiver, gw.repeat_interval_s, gw.group_wait_s) == ("pager", 3600.0, 10.0)
    assert ml.group_key(_labels()) == '{}/1/0:{alertname="latency.ttft_p99"}'
    # "..." groups by every label: one group per alert.
    assert audit.group_labels(_labels()) == dict(sorted(_labels().items()))
    # A group_by label the alert lacks is left out of the group's labels.
    assert gw.group_labels({"severity": "error"}) == {}


def test_no_child_matches_falls_back_to_the_parent() -> None:
    route = Route.model_validate(
        {
            "receiver": "default",
            "routes": [
                {"matchers": ["team=x"], "receiver": "x"},
                {"matchers": ["team=y"], "routes": [{"matchers": ["env=prod"], "receiver": "yp"}]},
            ],
        }
    )
    router = Router(route)
    assert router.receivers_for({"team": "z"}) == ["default"]
    assert router.receivers_for({"team": "x"}) == ["x"]
    # Child of a receiver-less route: it inherits "default" when its own children miss.
    assert router.receivers_for({"team": "y"}) == ["default"]
    assert router.receivers_for({"team": "y", "env": "prod"}) == ["yp"]


def test_bad_config_fails_naming_the_field() -> None:
    receivers = [{"name": "a", "type": "console"}]
    with pytest.raises(ValueError, match=r"route\.routes\[0\]\.receiver: unknown receiver 'b'"):
        parse_config(
            {"receivers": receivers, "route": {"receiver": "a", "routes": [{"receiver": "b"}]}}
        )
    with pytest.raises(ValueError, match="default receiver"):
        parse_config({"receivers": receivers, "route": {"routes": []}})
    with pytest.raises(ValueError, match="bad regular expression"):
        parse_config(
            {"receivers": receivers, "route": {"receiver": "a", "routes": [{"matchers": ["x=~("]}]}}
        )
    with pytest.raises(ValidationError, match="every label"):
        Route.model_validate({"receiver": "a", "group_by": ["...", "host"]})
