"""Stage 1, the route tree: which receivers get an alert, and how its group is cut and timed.

Alertmanager's semantics: the root matches everything; children are tried in order
and the first match wins unless it sets ``continue``; a node none of whose children
match is itself the match. ``receiver``, ``group_by``, ``group_wait``,
``group_interval`` and ``repeat_interval`` are inherited from the parent.
``group_by: ["..."]`` groups by every label (one group per alert).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.durations import Duration

from .matchers import Matcher, match_all

Seconds = Annotated[float, Field(ge=0)]
ALL_LABELS = "..."


class Route(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    receiver: str | None = None
    matchers: list[Matcher] = Field(default_factory=list)
    continue_: bool = Field(False, alias="continue")
    routes: list[Route] = Field(default_factory=list)
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = Field(None, ge=0)  # 0: look at every flush
    repeat_interval: Duration | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _group_by(self) -> Route:
        if self.group_by and ALL_LABELS in self.group_by and len(self.group_by) > 1:
            raise ValueError('group_by: "..." means every label; list nothing else with it')
        return self


@dataclass(frozen=True, slots=True)
class RouteOpts:
    """What a matched node says, with its parents' values filled in."""

    route_id: str  # e.g. "{}/0/1": where in the tree; part of the group key
    receiver: str
    group_by: tuple[str, ...]
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        if ALL_LABELS in self.group_by:
            return dict(sorted(labels.items()))
        # Alertmanager leaves a missing group_by label out of the group's labels.
        return {k: labels[k] for k in sorted(self.group_by) if k in labels}

    def group_key(self, labels: Mapping[str, str]) -> str:
        glabels = self.group_labels(labels)
        inner = ",".join(f'{k}="{v}"' for k, v in glabels.items())
        return f"{self.route_id}:{{{inner}}}"


# Alertmanager's defaults for the root route.
ROOT_DEFAULTS = RouteOpts("{}", "", (), 30.0, 300.0, 4 * 3600.0)


def _inherit(route: Route, parent: RouteOpts, route_id: str) -> RouteOpts:
    return RouteOpts(
        route_id=route_id,
        receiver=route.receiver or parent.receiver,
        group_by=tuple(route.group_by) if route.group_by is not None else parent.group_by,
        group_wait_s=parent.group_wait_s if route.group_wait is None else route.group_wait,
        group_interval_s=(
            parent.group_interval_s if route.group_interval is None else route.group_interval
        ),
        repeat_interval_s=(
            parent.repeat_interval_s if route.repeat_interval is None else route.repeat_interval
        ),
    )


def receivers_named(route: Route, path: str = "route") -> list[tuple[str, str]]:
    """(config path, receiver name) of every node that names one, for start-up checks."""
    found = [(path, route.receiver)] if route.receiver else []
    for i, child in enumerate(route.routes):
        found.extend(receivers_named(child, f"{path}.routes[{i}]"))
    return found


class Router:
    def __init__(self, root: Route) -> None:
        if root.receiver is None:
            raise ValueError("route.receiver: the root route needs a default receiver")
        self._root = root
        self._root_opts = _inherit(root, ROOT_DEFAULTS, "{}")

    def match(self, labels: Mapping[str, str]) -> list[RouteOpts]:
        """The matched nodes in tree order, each once."""
        found = self._walk(self._root, self._root_opts, labels)
        return list({o.route_id: o for o in found}.values())

    def receivers_for(self, labels: Mapping[str, str]) -> list[str]:
        return list(dict.fromkeys(o.receiver for o in self.match(labels)))

    def _walk(self, route: Route, opts: RouteOpts, labels: Mapping[str, str]) -> list[RouteOpts]:
        matched: list[RouteOpts] = []
        for i, child in enumerate(route.routes):
            if not match_all(child.matchers, labels):
                continue
            matched.extend(self._walk(child, _inherit(child, opts, f"{opts.route_id}/{i}"), labels))
            if not child.continue_:
                break
        return matched or [opts]
