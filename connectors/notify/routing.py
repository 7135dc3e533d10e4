"""An Alertmanager-like routing tree: which receivers get an alert.

Semantics follow Alertmanager: the root matches everything; children are tried
in order and the first match wins unless it sets ``continue``; a node none of
whose children match is itself the match; ``receiver`` is inherited from the
parent. Regex matchers are anchored at both ends, as in Alertmanager.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.models import Alert

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class Matcher(BaseModel):
    """``label op value``; written in config as ``'severity=~"critical|error"'`` or a dict."""

    model_config = ConfigDict(frozen=True)

    label: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        found = _MATCHER.match(data)
        if not found:
            raise ValueError(f"matcher {data!r} is not of the form label<op>value")
        label, op, value = found.groups()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        return {"label": label, "op": op, "value": value}

    @model_validator(mode="after")
    def _compiles(self) -> Matcher:
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"matcher on {self.label!r}: bad regex: {exc}") from exc
        return self

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(f"^(?:{self.value})$")

    def matches(self, labels: dict[str, str]) -> bool:
        # A missing label reads as "", as in Alertmanager.
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = self._regex.match(actual) is not None
        return hit if self.op == "=~" else not hit


class Route(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    receiver: str | None = None
    matchers: list[Matcher] = Field(default_factory=list)
    continue_: bool = Field(False, alias="continue")
    routes: list[Route] = Field(default_factory=list)


class RoutingConfig(BaseModel):
    """The tree plus the receiver names it may use; unknown names fail at start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    route: Route
    receivers: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_receivers(self) -> RoutingConfig:
        if self.route.receiver is None:
            raise ValueError("route.receiver: the root route needs a default receiver")
        if self.receivers:
            known = set(self.receivers)
            for path, receiver in _receivers(self.route, "route"):
                if receiver not in known:
                    raise ValueError(f"{path}.receiver: unknown receiver {receiver!r}")
        return self


def _receivers(route: Route, path: str) -> list[tuple[str, str]]:
    found = [(path, route.receiver)] if route.receiver else []
    for i, child in enumerate(route.routes):
        found.extend(_receivers(child, f"{path}.routes[{i}]"))
    return found


def alert_labels(alert: Alert) -> dict[str, str]:
    """What matchers see: the alert's labels plus severity, detector and alertname."""
    labels = {
        "alertname": alert.title,
        "severity": str(alert.severity),
        "detector": alert.detector,
    }
    labels.update(alert.labels)
    return labels


class Router:
    def __init__(self, config: RoutingConfig | Route) -> None:
        self._root = config.route if isinstance(config, RoutingConfig) else config

    def receivers_for(self, alert: Alert) -> list[str]:
        """Receiver names in tree order, each once."""
        labels = alert_labels(alert)
        found = self._walk(self._root, labels, self._root.receiver or "")
        return list(dict.fromkeys(found))

    def _walk(self, route: Route, labels: dict[str, str], inherited: str) -> list[str]:
        receiver = route.receiver or inherited
        matched: list[str] = []
        for child in route.routes:
            if not all(m.matches(labels) for m in child.matchers):
                continue
            matched.extend(self._walk(child, labels, receiver))
            if not child.continue_:
                break
        return matched or ([receiver] if receiver else [])
