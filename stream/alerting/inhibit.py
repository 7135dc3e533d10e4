"""Stage 3, inhibition: a firing cause holds the symptom alerts it explains.

Alertmanager's ``inhibit_rules``: while an alert matching ``source_matchers`` fires, an
alert matching ``target_matchers`` that has the same value for every label in
``equal`` is not notified. It is evaluated when a group is flushed, against every
alert firing at that moment, so a cause that arrives within ``group_wait`` of its
symptoms still holds them: the page names the cause, not the symptoms.

Two differences from Alertmanager, both to avoid muting too much: an ``equal`` label
must be present on both sides (a missing host is not "the same host", or one GPU
alert would hold every host-less alert in the fleet), and an alert never holds itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from .matchers import Matcher, match_all


class InhibitRule(BaseModel):
    """A firing alert matching ``source_matchers`` holds alerts matching
    ``target_matchers`` that carry the same value for every label in ``equal``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    source_matchers: list[Matcher]
    target_matchers: list[Matcher]
    equal: list[str] = Field(default_factory=list)
    reason: str = ""


# Shipped with the notifier; docs/notifier.md gives each one's reason at more length.
_DEFAULTS: tuple[dict[str, object], ...] = (
    {
        "name": "gpu-unhealthy-holds-host-symptoms",
        "source_matchers": ['detector="gpu_health"'],
        "target_matchers": ['detector=~"latency.*|error.*|slo.*"'],
        "equal": ["host"],
        "reason": "a throttled, erroring or leaking GPU explains slow, failing and "
        "SLO-burning requests served on its host: page for the GPU, not each symptom",
    },
    {
        "name": "silent-gateway-holds-its-traffic-and-errors",
        "source_matchers": ['alertname="traffic.gateway_silent"'],
        "target_matchers": [
            'detector=~"traffic|error_rate|slo_burn"',
            'alertname!="traffic.gateway_silent"',
        ],
        "equal": ["gateway"],
        "reason": "a gateway that sends nothing also shows rate drops, silent models and "
        "error/SLO noise from its last requests: the silence is the incident",
    },
    {
        "name": "version-regression-holds-its-latency",
        "source_matchers": ['alertname="version_regression.latency"'],
        "target_matchers": ['detector="latency"'],
        "equal": ["model", "model_version"],
        "reason": "a new model version that is slower than the old one makes every "
        "per-series latency alert of that version fire; the regression names the cause",
    },
)


def default_inhibit_rules() -> list[InhibitRule]:
    return [InhibitRule.model_validate(rule) for rule in _DEFAULTS]


@dataclass(frozen=True, slots=True)
class Inhibition:
    source: str  # fingerprint of the firing cause
    cause: str  # human words for the cause, e.g. 'gpu.xid (host="h1")'
    rule: str


def _cause(labels: Mapping[str, str], equal: Sequence[str]) -> str:
    shared = ", ".join(f'{k}="{labels[k]}"' for k in equal)
    name = labels.get("alertname", "?")
    return f"{name} ({shared})" if shared else name


class Inhibitor:
    def __init__(self, rules: Iterable[InhibitRule]) -> None:
        self.rules = list(rules)

    def evaluate(
        self,
        firing: Mapping[str, Mapping[str, str]],
        targets: Mapping[str, Mapping[str, str]],
    ) -> dict[str, Inhibition]:
        """Which of ``targets`` (fingerprint -> labels) the ``firing`` alerts hold, and why.

        Sources are tried in fingerprint order, so the answer does not depend on dict order.
        """
        out: dict[str, Inhibition] = {}
        for rule in self.rules:
            sources = [
                (fp, lab)
                for fp, lab in sorted(firing.items())
                if match_all(rule.source_matchers, lab)
            ]
            if not sources:
                continue
            for fp, lab in sorted(targets.items()):
                if fp in out or not match_all(rule.target_matchers, lab):
                    continue
                for sfp, slab in sources:
                    if sfp != fp and all(
                        k in lab and k in slab and lab[k] == slab[k] for k in rule.equal
                    ):
                        out[fp] = Inhibition(sfp, _cause(slab, rule.equal), rule.name)
                        break
        return out
