"""Multi-window, multi-burn-rate SLO alerting (Google SRE workbook, chapter 5).

Per (model, gateway) the detector keeps per-bucket request counts in event time:
all requests, failed requests (availability SLO) and requests slower than the
latency threshold (latency SLO). A rule fires when the error-budget burn rate is
at or above its factor over both its long and its short window: the long window
gives significance, the short one makes the alert reset quickly after recovery.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator

from detectors._tracking import (
    Culprits,
    FiringState,
    clean_ts,
    dominant,
    fmt,
    groups,
    labels_of,
)
from detectors.base import Detector, DetectorConfig, DetectorOutput, Finding, squash
from detectors.registry import SeriesRegistry, grow
from schemas.columns import STATUS_CODES, InferenceColumns

SLOS = ("availability", "latency")
_NEVER = 2**62
_SEVERITY_RANK = {"critical": 3, "error": 2, "warning": 1, "info": 0}


class BurnRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    long_s: float = Field(gt=0)
    short_s: float = Field(gt=0)
    factor: float = Field(gt=0)
    severity: Literal["critical", "error", "warning", "info"] = "critical"


DEFAULT_RULES = (
    BurnRule(long_s=3600, short_s=300, factor=14.4, severity="critical"),
    BurnRule(long_s=6 * 3600, short_s=1800, factor=6.0, severity="critical"),
    BurnRule(long_s=3 * 86400, short_s=6 * 3600, factor=1.0, severity="warning"),
)


class SloBurnConfig(DetectorConfig):
    availability_target: float = Field(0.999, gt=0, lt=1)
    latency_target: float = Field(0.99, gt=0, lt=1)
    # TTFT by default: end-to-end latency grows with the answer's length (a 2k-token answer
    # takes a minute on a healthy server), so a fixed end-to-end bound burns budget on
    # long answers, not on slow service.
    latency_metric: Literal["ttft_ms", "latency_ms"] = "ttft_ms"
    latency_threshold_ms: float = Field(5_000.0, gt=0)
    bad_statuses: tuple[str, ...] = ("error", "timeout")
    rules: tuple[BurnRule, ...] = DEFAULT_RULES
    bucket_s: float = Field(60.0, gt=0)
    # Below this many requests in a short window the rule stays quiet: 1 of 3 failing
    # is not a burn rate anyone should be paged for.
    min_requests: int = Field(10, ge=1)
    # A rule speaks only once the series has data for this fraction of its long window:
    # two failures in the first minute are not a three-day burn.
    min_coverage: float = Field(0.25, ge=0, le=1)
    series_ttl_s: float = Field(7 * 86400.0, gt=0)

    @field_validator("bad_statuses")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(v) - set(STATUS_CODES))
        if unknown:
            raise ValueError(f"unknown status {unknown}; known: {sorted(STATUS_CODES)}")
        return v

    @field_validator("rules")
    @classmethod
    def _short_within_long(cls, v: tuple[BurnRule, ...]) -> tuple[BurnRule, ...]:
        if not v:
            raise ValueError("at least one burn rule is needed")
        for r in v:
            if r.short_s > r.long_s:
                raise ValueError(f"short window {r.short_s} s exceeds long window {r.long_s} s")
        return v


class SloBurnDetector(Detector[InferenceColumns]):
    name: ClassVar[str] = "slo_burn"
    consumes: ClassVar[type[InferenceColumns]] = InferenceColumns
    Config: ClassVar[type[DetectorConfig]] = SloBurnConfig

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        cfg = self.cfg
        longest = max(r.long_s for r in cfg.rules)
        self.n_buckets = int(np.ceil(longest / cfg.bucket_s)) + 1
        self.registry = SeriesRegistry(
            ("model", "gateway"), ttl_s=cfg.series_ttl_s, initial_capacity=8
        )
        cap = self.registry.capacity
        # Ring of buckets per series: which bucket a slot holds, and its counts
        # (columns: total, failed, slow).
        self.bucket_id = np.full((cap, self.n_buckets), -1, dtype=np.int64)
        self.counts = np.zeros((cap, self.n_buckets, 3), dtype=np.int32)
        self.first_bucket = np.full(cap, _NEVER, dtype=np.int64)
        self.firing = FiringState()
        self.culprits = Culprits()
        bad = [STATUS_CODES[s] for s in cfg.bad_statuses]
        self._bad_codes = np.array(bad, dtype=np.int64)

    @property
    def _latency_name(self) -> str:
        return "TTFT" if self.cfg.latency_metric == "ttft_ms" else "latency"

    @property
    def cfg(self) -> SloBurnConfig:
        assert isinstance(self.config, SloBurnConfig)
        return self.config

    @property
    def bytes_per_series(self) -> float:
        return float(self.bucket_id[0].nbytes + self.counts[0].nbytes + 8)

    def _ensure_capacity(self) -> None:
        cap = self.registry.capacity
        if self.bucket_id.shape[0] < cap:
            self.bucket_id = grow(self.bucket_id, cap, -1)
            self.counts = grow(self.counts, cap, 0)
            self.first_bucket = grow(self.first_bucket, cap, _NEVER)

    def _by_age(self, sid: int, end_bucket: int) -> npt.NDArray[np.int64]:
        """Cumulative (total, failed, slow) by bucket age: row k sums the k+1 newest buckets.

        One gather of the ring serves every window of every rule.
        """
        # Newest first: slots e, e-1, ..., 0, then N-1, ..., e+1 (two reversed slices).
        e = int(end_bucket % self.n_buckets)
        ring_ids = self.bucket_id[sid]
        ring = self.counts[sid]
        held = np.concatenate((ring_ids[e::-1], ring_ids[:e:-1]))
        counts = np.concatenate((ring[e::-1], ring[:e:-1])).astype(np.int64)
        counts[held != end_bucket - np.arange(self.n_buckets)] = 0
        out: npt.NDArray[np.int64] = np.cumsum(counts, axis=0)
        return out

    def _burns(self, sid: int, end_bucket: int) -> dict[str, list[tuple[float, float, int]]]:
        """Per SLO, per rule: (long burn, short burn, short-window requests)."""
        cfg = self.cfg
        budgets = {"availability": 1 - cfg.availability_target, "latency": 1 - cfg.latency_target}
        out: dict[str, list[tuple[float, float, int]]] = {s: [] for s in SLOS}
        covered = (end_bucket - self.first_bucket[sid] + 1) * cfg.bucket_s
        cum = self._by_age(sid, end_bucket)
        for rule in cfg.rules:
            if covered < cfg.min_coverage * rule.long_s:
                for slo in SLOS:
                    out[slo].append((0.0, 0.0, 0))
                continue
            long_c = cum[min(int(np.ceil(rule.long_s / cfg.bucket_s)), self.n_buckets) - 1]
            short_c = cum[min(int(np.ceil(rule.short_s / cfg.bucket_s)), self.n_buckets) - 1]
            for col, slo in ((1, "availability"), (2, "latency")):
                lb = long_c[col] / long_c[0] / budgets[slo] if long_c[0] else 0.0
                sb = short_c[col] / short_c[0] / budgets[slo] if short_c[0] else 0.0
                out[slo].append((float(lb), float(sb), int(short_c[0])))
        return out

    def _statistic(self, burns: list[tuple[float, float, int]]) -> float:
        """Worst rule's min(long, short) burn over its factor: 1.0 == at the threshold."""
        stat = 0.0
        for rule, (lb, sb, n_short) in zip(self.cfg.rules, burns, strict=True):
            if n_short >= self.cfg.min_requests:
                stat = max(stat, min(lb, sb) / rule.factor)
        return stat

    def update(self, batch: InferenceColumns) -> DetectorOutput:
        n = len(batch)
        scores = np.zeros(n, dtype=np.float64)
        if n == 0:
            return DetectorOutput(scores, [])
        cfg = self.cfg
        ts = clean_ts(batch.ts)
        ids = self.registry.ids_for(labels_of((batch.model, batch.gateway)), ts)
        self._ensure_capacity()
        buckets = np.floor(ts / cfg.bucket_s).astype(np.int64)
        failed = np.isin(batch.status, self._bad_codes)
        lat = getattr(batch, cfg.latency_metric)
        slow = np.isfinite(lat) & (lat > cfg.latency_threshold_ms) | np.isposinf(lat)
        findings: list[Finding] = []
        for sid, rows in groups(ids):
            b = buckets[rows]
            newest = int(b.max())
            # Buckets older than the ring are too late to count.
            keep = b > newest - self.n_buckets
            rows, b = rows[keep], b[keep]
            uniq, inv = np.unique(b, return_inverse=True)
            self.first_bucket[sid] = min(int(self.first_bucket[sid]), int(uniq[0]))
            slots = uniq % self.n_buckets
            stale = self.bucket_id[sid, slots] != uniq
            # A slot whose stored bucket is newer than this one belongs to later data.
            too_old = stale & (self.bucket_id[sid, slots] > uniq)
            reset = stale & ~too_old
            self.counts[sid, slots[reset]] = 0
            self.bucket_id[sid, slots[reset]] = uniq[reset]
            add = np.column_stack(
                [
                    np.bincount(inv, minlength=uniq.size),
                    np.bincount(inv, weights=failed[rows], minlength=uniq.size),
                    np.bincount(inv, weights=slow[rows], minlength=uniq.size),
                ]
            ).astype(np.int64)
            add[too_old] = 0
            self.counts[sid, slots] += add.astype(np.int32)
            stat_by_bucket = np.empty(uniq.size)
            for j, bucket in enumerate(uniq.tolist()):
                burns = self._burns(sid, bucket)
                stat_by_bucket[j] = max(self._statistic(burns[s]) for s in SLOS)
            scores[rows] = squash(stat_by_bucket[inv], 1.0)
            # uniq is sorted, so ``burns`` now holds the newest bucket's burn rates.
            bad = {"availability": failed[rows], "latency": slow[rows]}
            hosts = batch.host[rows]
            findings.extend(self._findings(sid, burns, float(ts[rows].max()), hosts, bad))
        self._evict(float(ts.max()))
        return DetectorOutput(scores, findings)

    def _findings(
        self,
        sid: int,
        burns: dict[str, list[tuple[float, float, int]]],
        ts: float,
        hosts: npt.NDArray[Any],
        bad: dict[str, npt.NDArray[np.bool_]],
    ) -> list[Finding]:
        labels = self.registry.labels(sid)
        out: list[Finding] = []
        for slo in SLOS:
            fired = [
                (rule, lb, sb)
                for rule, (lb, sb, n_short) in zip(self.cfg.rules, burns[slo], strict=True)
                if n_short >= self.cfg.min_requests and lb >= rule.factor and sb >= rule.factor
            ]
            stat = self._statistic(burns[slo])
            worst = max(
                fired, key=lambda f: (_SEVERITY_RANK[f[0].severity], f[0].factor), default=None
            )
            ref = worst if worst is not None else (self.cfg.rules[0], *burns[slo][0][:2])
            # Localised to a host when nearly all of the batch's bad requests came from it;
            # when they move elsewhere the episode ends and a new one starts.
            series, ended = self.culprits.relabel(
                (sid, slo),
                worst is not None,
                labels,
                functools.partial(dominant, labels_of((hosts[bad[slo]],))[0]),
            )

            def make(
                anomalous: bool,
                slo: str = slo,
                ref: Any = ref,
                stat: float = stat,
                fired: bool = worst is not None,
                series: dict[str, str] = series,
            ) -> Finding:
                rule, lb, sb = ref
                target = (
                    self.cfg.availability_target
                    if slo == "availability"
                    else self.cfg.latency_target
                )
                what = (
                    "requests failing"
                    if slo == "availability"
                    else f"requests with {self._latency_name} over "
                    f"{fmt(self.cfg.latency_threshold_ms)} ms"
                )
                verdict = "burning" if fired else "back under"
                text = (
                    f"{slo} SLO {target:.3%} for {labels['model']} via {labels['gateway']}: "
                    f"{verdict} error budget at {fmt(lb)}x over {_dur(rule.long_s)} and "
                    f"{fmt(sb)}x over {_dur(rule.short_s)} ({what}); "
                    f"threshold {fmt(rule.factor)}x"
                )
                if "host" in series:
                    text += f"; concentrated on host {series['host']}"
                return Finding(
                    detector=self.name,
                    kind=f"slo_burn.{slo}",
                    series=series,
                    ts=ts,
                    score=float(squash(stat, 1.0)),
                    anomalous=anomalous,
                    observed=lb,
                    expected=rule.factor,
                    lower=None,
                    upper=rule.factor,
                    severity=rule.severity if anomalous else "info",
                    explanation=text,
                    scope=dict(series),
                )

            if ended is not None:
                self.firing.firing.discard((sid, slo))
                out.append(make(False, series=ended, fired=False))
            f = self.firing.report((sid, slo), worst is not None, make)
            if f is not None:
                out.append(f)
        return out

    def _evict(self, now: float) -> None:
        freed = self.registry.evict_idle(now)
        if freed.size:
            self.bucket_id[freed] = -1
            self.counts[freed] = 0
            self.first_bucket[freed] = _NEVER
            gone = set(freed.tolist())
            self.firing.forget(lambda k: isinstance(k, tuple) and k[0] in gone)
            for key in [k for k in self.culprits.hosts if k[0] in gone]:  # type: ignore[index]
                del self.culprits.hosts[key]


def _dur(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{fmt(seconds)}s"
