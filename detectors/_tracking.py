"""Small shared pieces for the per-series detectors: firing-state tracking and grouping.

Not a detector module (the leading underscore keeps ``detectors.config`` from scanning it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.base import Finding


class FiringState:
    """Remembers which (series, kind) keys were anomalous, to emit one recovery each.

    ``report`` is called once per key per batch with the key's current verdict; it
    returns the finding to emit: the anomalous finding, the single recovery finding
    the first time a previously anomalous key looks normal, or None.
    """

    def __init__(self) -> None:
        self.firing: set[Hashable] = set()

    def step(self, key: Hashable, anomalous: bool) -> bool | None:
        """The finding this verdict calls for: True (anomalous), False (the one recovery
        of an episode), None (nothing to say)."""
        if anomalous:
            self.firing.add(key)
            return True
        if key in self.firing:
            self.firing.discard(key)
            return False
        return None

    def report(
        self, key: Hashable, anomalous: bool, make: Callable[[bool], Finding]
    ) -> Finding | None:
        """``step``, with the finding made by ``make`` when there is one."""
        verdict = self.step(key, anomalous)
        return None if verdict is None else make(verdict)

    def forget(self, predicate: Callable[[Hashable], bool]) -> None:
        self.firing = {k for k in self.firing if not predicate(k)}

    def forget_series(self, gone: set[int], at: int | None = 0) -> None:
        """Forget the keys of evicted series: keys are series ids (``at`` None) or
        tuples holding the series id at position ``at``."""
        if at is None:
            self.forget(lambda k: k in gone)
        else:
            self.forget(lambda k: isinstance(k, tuple) and k[at] in gone)


def runs(ids: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """(rows ordered by id, stable; where each id's run starts in that order), for a
    non-empty batch."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    return order, starts


def groups(ids: npt.NDArray[np.int64]) -> Iterator[tuple[int, npt.NDArray[np.intp]]]:
    """Yield (series id, row positions in input order) for every id in a batch."""
    if ids.size == 0:
        return
    order, starts = runs(ids)
    ends = np.r_[starts[1:], ids.size]
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        yield int(ids[order[s]]), order[s:e]


def clean_ts(ts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Event times with NaN/inf replaced by the batch's last finite time (or 0)."""
    finite = np.isfinite(ts)
    if finite.all():
        return ts
    fill = float(ts[finite].max()) if finite.any() else 0.0
    return np.where(finite, ts, fill)


def labels_of(columns: tuple[npt.NDArray[Any], ...]) -> tuple[npt.NDArray[Any], ...]:
    """Label columns with None replaced by "" so every key is a tuple of strings."""
    out = []
    for col in columns:
        arr = np.asarray(col, dtype=object)
        if (arr == None).any():  # noqa: E711  (elementwise, on object arrays)
            arr = np.array(["" if v is None else str(v) for v in arr], dtype=object)
        out.append(arr)
    return tuple(out)


def fmt(value: float) -> str:
    """A short human number for explanations."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def dominant(values: npt.NDArray[Any], min_count: int = 5, share: float = 0.8) -> str | None:
    """The value that at least ``share`` of ``values`` carry: "" when none does, None when
    there are fewer than ``min_count`` (not enough evidence either way).

    Used to localise a symptom: when nearly all of a series' failures come from one
    serving host, the alert names that host, so a GPU alert on it can explain (inhibit)
    the symptom and the responder knows where to look.
    """
    tally: dict[str, float] = {}
    for v in values.tolist():
        if v:
            tally[str(v)] = tally.get(str(v), 0.0) + 1.0
    return dominant_of(tally, min_count, share)


def dominant_of(tally: dict[str, float], min_count: int = 5, share: float = 0.8) -> str | None:
    """``dominant`` over counts already tallied per value."""
    total = sum(tally.values())
    if total < min_count:
        return None
    top = max(tally, key=lambda k: tally[k])
    return top if tally[top] >= share * total else ""


class Culprits:
    """Per firing episode, the host a series' symptom was localised to.

    ``labels`` decides once per episode. ``relabel`` also re-decides while the episode
    lasts: when the failures move elsewhere, the old episode ends (its caller emits a
    recovery for the old labels) and a new one starts, so a second incident on the same
    series is not hidden under the first one's alert. Latency uses it upgrade-only
    (host-level verdicts flicker; an alert that changed labels every minute would be
    worse than an unlocalised one).
    """

    def __init__(self) -> None:
        self.hosts: dict[Hashable, str] = {}

    @staticmethod
    def _with(base: dict[str, str], host: str) -> dict[str, str]:
        return {**base, "host": host} if host else base

    def labels(
        self,
        key: Hashable,
        anomalous: bool,
        base: dict[str, str],
        decide: Callable[[], str | None],
    ) -> dict[str, str]:
        if anomalous and key not in self.hosts:
            self.hosts[key] = decide() or ""
        host = self.hosts.get(key, "")
        if not anomalous:
            self.hosts.pop(key, None)
        return self._with(base, host)

    def relabel(
        self,
        key: Hashable,
        anomalous: bool,
        base: dict[str, str],
        decide: Callable[[], str | None],
        upgrade_only: bool = False,
    ) -> tuple[dict[str, str], dict[str, str] | None]:
        """(labels now, labels of an episode that just ended because its host changed).

        ``upgrade_only``: only an unlocalised episode may become localised (evidence that
        arrives a little late), never the other way round (verdicts that flicker)."""
        if anomalous and key in self.hosts:
            now = decide()
            if upgrade_only and (self.hosts[key] or not now):
                now = None
            if now is not None and now != self.hosts[key]:
                ended = self._with(base, self.hosts[key])
                self.hosts[key] = now
                return self._with(base, now), ended
        return self.labels(key, anomalous, base, decide), None
