"""Alertmanager-like routing tree."""

from __future__ import annotations

import pytest
from notify_fakes import make_alert
from pydantic import ValidationError

from connectors.notify import Matcher, Route, Router, RoutingConfig

TREE = {
    "receivers": ["default", "pager", "slack-ml", "slack-infra", "audit"],
    "route": {
        "receiver": "default",
        "routes": [
            {"receiver": "audit", "continue": True},
            {
                "matchers": ['severity=~"critical|error"', "team!=sandbox"],
                "receiver": "pager",
                "routes": [
                    {"matchers": ["model=~llama-.*"], "receiver": "slack-ml", "continue": True},
                    {"matchers": ["gateway=gw-eu-1"]},
                ],
            },
            {"matchers": ["team=infra"], "receiver": "slack-infra"},
            {"matchers": ['detector!~"drift_.*"']},
        ],
    },
}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # critical + llama: audit (continue), pager branch -> slack-ml (continue) then gw child
        ({}, ["audit", "slack-ml", "pager"]),
        ({"labels": {"model": "mistral", "gateway": "gw-us"}}, ["audit", "pager"]),
        # As in Alertmanager, a matching `continue` child counts as a match: no fallback to root.
        ({"labels": {"team": "sandbox", "model": "x"}, "detector": "drift_kl"}, ["audit"]),
        ({"severity": "warning", "labels": {"team": "infra"}}, ["audit", "slack-infra"]),
        ({"severity": "info", "labels": {}, "detector": "latency"}, ["audit", "default"]),
        ({"severity": "info", "labels": {}, "detector": "drift_psi"}, ["audit"]),
    ],
)
def test_tree_cases(overrides: dict[str, object], expected: list[str]) -> None:
    router = Router(RoutingConfig.model_validate(TREE))
    assert router.receivers_for(make_alert(**overrides)) == expected


def test_no_child_matches_falls_back_to_the_parent() -> None:
    route = Route(
        receiver="default",
        routes=[
            Route(matchers=["team=x"], receiver="x"),
            Route(matchers=["team=y"], routes=[Route(matchers=["env=prod"], receiver="y-prod")]),
        ],
    )
    router = Router(route)
    assert router.receivers_for(make_alert(labels={"team": "z"})) == ["default"]
    assert router.receivers_for(make_alert(labels={"team": "x"})) == ["x"]
    # Child of a receiver-less route: it inherits "default" when its own children miss.
    assert router.receivers_for(make_alert(labels={"team": "y"})) == ["default"]
    assert router.receivers_for(make_alert(labels={"team": "y", "env": "prod"})) == ["y-prod"]


def test_matcher_forms_and_anchoring() -> None:
    labels = {"model": "llama-70b", "env": ""}
    assert Matcher.model_validate('model=~"llama-.*"').matches(labels)
    assert not Matcher.model_validate("model=~llama").matches(labels)  # anchored
    assert Matcher.model_validate("model!~mistral.*").matches(labels)
    assert Matcher.model_validate('env=""').matches(labels)
    assert Matcher.model_validate("missing=").matches(labels)  # absent reads as ""
    assert Matcher.model_validate({"label": "model", "op": "!=", "value": "x"}).matches(labels)


def test_bad_config_fails_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"routes\[0\]\.receiver: unknown receiver"):
        RoutingConfig.model_validate(
            {"receivers": ["a"], "route": {"receiver": "a", "routes": [{"receiver": "b"}]}}
        )
    with pytest.raises(ValidationError, match="bad regex"):
        Matcher.model_validate("a=~(")
    with pytest.raises(ValidationError, match="not of the form"):
        Matcher.model_validate("just words")
    with pytest.raises(ValidationError, match="default receiver"):
        RoutingConfig.model_validate({"route": {"routes": []}})
