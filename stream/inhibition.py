"""Inhibition: a firing cause mutes the symptom alerts it explains."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stream.lifecycle_config import InhibitRule
from stream.matchers import match_all


@dataclass(frozen=True, slots=True)
class Inhibition:
    source: str  # fingerprint of the firing cause
    cause: str  # human words for the cause, e.g. 'gpu.xid (host="h1")'


def _cause(labels: Mapping[str, str], equal: Sequence[str]) -> str:
    shared = ", ".join(f'{k}="{labels[k]}"' for k in equal)
    name = labels.get("alertname", "?")
    return f"{name} ({shared})" if shared else name


def inhibitions(
    rules: Sequence[InhibitRule],
    firing: Mapping[str, Mapping[str, str]],
    targets: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Inhibition]:
    """Which alerts are inhibited by the ``firing`` ones (fingerprint -> labels), and by what.

    ``targets`` defaults to ``firing``; pass more (e.g. alerts resolving right now) to
    ask about them too without letting them act as causes.
    An ``equal`` label must be present on both sides: a missing host never counts as
    "the same host", or one GPU alert would mute every host-less alert in the fleet.
    An alert never inhibits itself; sources are tried in fingerprint order so the
    answer does not depend on dict order.
    """
    candidates = firing if targets is None else targets
    out: dict[str, Inhibition] = {}
    for rule in rules:
        sources = [
            (fp, lab) for fp, lab in sorted(firing.items()) if match_all(rule.source_matchers, lab)
        ]
        if not sources:
            continue
        for fp, lab in sorted(candidates.items()):
            if fp in out or not match_all(rule.target_matchers, lab):
                continue
            for sfp, slab in sources:
                if sfp != fp and all(
                    k in lab and k in slab and lab[k] == slab[k] for k in rule.equal
                ):
                    out[fp] = Inhibition(sfp, _cause(slab, rule.equal))
                    break
    return out
