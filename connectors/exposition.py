"""Prometheus text exposition parsed into one scrape's gauges, counters and histograms.

Also Prometheus's ``histogram_quantile``, which every windowed percentile in
``llmwatch scrape`` goes through.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

LabelSet = tuple[tuple[str, str], ...]
SeriesId = tuple[str, LabelSet]


def _labelset(labels: Mapping[str, str]) -> LabelSet:
    return tuple(sorted(labels.items()))


@dataclass
class Histogram:
    """Cumulative bucket counts by upper bound (``+Inf`` included), plus sum and count."""

    buckets: dict[float, float] = field(default_factory=dict)
    sum: float = 0.0
    count: float = 0.0


@dataclass
class Snapshot:
    """One scrape, grouped by kind; each series is (sample or family name, sorted labels)."""

    gauges: dict[SeriesId, float] = field(default_factory=dict)
    counters: dict[SeriesId, float] = field(default_factory=dict)
    histograms: dict[SeriesId, Histogram] = field(default_factory=dict)


def parse_exposition(text: str, prefixes: Sequence[str] = ()) -> Snapshot:
    """Parse Prometheus text exposition; keep only families starting with one of ``prefixes``."""
    snap = Snapshot()
    for fam in text_string_to_metric_families(text):
        if prefixes and not fam.name.startswith(tuple(prefixes)):
            continue
        if fam.name.endswith("_created"):
            continue  # creation timestamps, not measurements
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            if fam.type == "counter":
                snap.counters[(s.name, _labelset(s.labels))] = float(s.value)
            elif fam.type == "histogram":
                _add_histogram_sample(snap, fam.name, s.name, s.labels, float(s.value))
            elif fam.type == "summary" and s.name != fam.name:
                snap.counters[(s.name, _labelset(s.labels))] = float(s.value)  # _sum, _count
            else:  # gauge, unknown, summary quantiles, info, stateset
                snap.gauges[(s.name, _labelset(s.labels))] = float(s.value)
    return snap


def _add_histogram_sample(
    snap: Snapshot, family: str, name: str, labels: Mapping[str, str], value: float
) -> None:
    rest = {k: v for k, v in labels.items() if k != "le"}
    hist = snap.histograms.setdefault((family, _labelset(rest)), Histogram())
    if name.endswith("_bucket"):
        hist.buckets[float(labels["le"])] = value
    elif name.endswith("_sum"):
        hist.sum = value
    elif name.endswith("_count"):
        hist.count = value


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus's ``histogram_quantile`` over (upper bound, cumulative count) pairs.

    NaN when there are no observations or no ``+Inf`` bucket. A rank in the ``+Inf``
    bucket answers the largest finite bound; the first bucket starts at 0 (or is its
    bound, when that is not positive).
    """
    if not 0.0 <= q <= 1.0:
        return math.nan if math.isnan(q) else (math.inf if q > 1 else -math.inf)
    bs = sorted(buckets)
    if len(bs) < 2 or not math.isinf(bs[-1][0]):
        return math.nan
    # Counts must not decrease with the bound; Prometheus repairs small violations the same way.
    fixed: list[tuple[float, float]] = []
    top = 0.0
    for bound, count in bs:
        top = max(top, count)
        fixed.append((bound, top))
    total = fixed[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    b = next(i for i, (_, c) in enumerate(fixed) if c >= rank)
    if b == len(fixed) - 1:
        return fixed[-2][0]
    if b == 0 and fixed[0][0] <= 0:
        return fixed[0][0]
    start = 0.0 if b == 0 else fixed[b - 1][0]
    end, count = fixed[b]
    below = 0.0 if b == 0 else fixed[b - 1][1]
    in_bucket = count - below
    if in_bucket <= 0:
        return end
    return start + (end - start) * ((rank - below) / in_bucket)
