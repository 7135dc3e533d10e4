"""Multi-window, multi-burn-rate SLO alerting (Google SRE workbook, chapter 5).

Per (model, gateway) the detector keeps per-bucket request counts in event time:
all requests, failed requests (availability SLO) and requests slower than the
latency threshold (latency SLO). A rule fires when the error-budget burn rate is
at or above its factor over both its long and its short window: the long window
gives significance, the short one makes the alert reset quickly after recovery.

No alert budget (a statistical false-alert rate) applies, on purpose: the thresholds
are the user's SLO policy. A burn-rate rule pages when the error budget the user chose
is being spent fast enough to matter (e.g. 2 % of a month's budget in an hour), whether
or not that rate is unusual for the series: a service that always burns too fast is in
breach, and one that never does must not page because its own history is calmer. The
rules' windows and factors set the paging rate against the objective (Google SRE
workbook, chapter 5), so calibrating them to a series' own distribution would change
what the SLO means.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from detectors._slo_config import DEFAULT_RULES, BurnRule, SloBurnConfig
from detectors._tracking import Culprits, FiringState, clean_ts, dominant, fmt, labels_of
from detectors.base import Detector, DetectorConfig, DetectorOutput, Finding, Migration, squash
from detectors.registry import Column, SeriesState
from schemas.columns import STATUS_CODES, InferenceColumns

SLOS = ("availability", "latency")
_LABELS = ("model", "gateway")
_NEVER = 2**62
_CHUNK = 16_384
_SEVERITY_RANK = {"critical": 3, "error": 2, "warning": 1, "info": 0}
# Names that snapshots (pickled configs) and callers reach through this module.
__all__ = ["DEFAULT_RULES", "SLOS", "BurnRule", "SloBurnConfig", "SloBurnDetector"]


def _columns(bins: int, tiers: int) -> dict[str, Column]:
    """Per series, one ring of bins per tier side by side (cells: total, failed, slow),
    the newest bin each ring holds (a slot's bin is implied by it), and the first bucket
    seen."""
    return {
        "counts": Column(0, np.uint32, (bins, 3)),
        "head": Column(-_NEVER, np.int64, (tiers,)),
        "first_bucket": Column(_NEVER, np.int64),
    }


def _from_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """State version 1 kept the arrays beside the registry. The older one-minute ring
    layout (no ``head``) cannot be read: its windows refill from new data."""
    state = dict(payload["state"])
    if "head" not in state:
        return {**payload, "state": {}}
    counts, head = state["counts"], state.pop("head")
    st = SeriesState(_LABELS, _columns(counts.shape[1], head.shape[1]), ttl_s=1.0)
    arrays = {"counts": state.pop("counts"), "head": head}
    st.adopt(state.pop("registry"), arrays | {"first_bucket": state.pop("first_bucket")})
    state["st"] = st
    return {**payload, "state": state}


class SloBurnDetector(Detector[InferenceColumns, SloBurnConfig]):
    name: ClassVar[str] = "slo_burn"
    consumes: ClassVar[type[InferenceColumns]] = InferenceColumns
    Config: ClassVar[type[DetectorConfig]] = SloBurnConfig
    state_version: ClassVar[int] = 2
    state_migrations: ClassVar[Mapping[int, Migration]] = {1: _from_v1}

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        cfg = self.cfg
        # Each window is summed from bins of its tier: (tier index, bins per window).
        mults: list[int] = []
        self.windows: list[tuple[tuple[int, int], tuple[int, int]]] = []
        spans: dict[int, int] = {}
        for rule in cfg.rules:
            pair = []
            for w in (rule.long_s, rule.short_s):
                m = _bin_mult(w, cfg.bucket_s, cfg.bins_per_window)
                k = int(np.ceil(w / (m * cfg.bucket_s)))
                spans[m] = max(spans.get(m, 0), k)
                pair.append((m, k))
            self.windows.append((pair[0], pair[1]))
        mults = sorted(spans)
        self.windows = [
            ((mults.index(lm), lk), (mults.index(sm), sk)) for (lm, lk), (sm, sk) in self.windows
        ]
        self.mult = np.array(mults, dtype=np.int64)
        self.span = np.array([spans[m] for m in mults], dtype=np.int64)  # bins a window may use
        # One spare bin per tier so rows of the previous bin still count as of their own time.
        self.n_bins = self.span + 1
        self.offset = np.concatenate(([0], np.cumsum(self.n_bins)[:-1])).astype(np.int64)
        columns = _columns(int(self.n_bins.sum()), self.mult.size)
        self.st = SeriesState(_LABELS, columns, ttl_s=cfg.series_ttl_s)
        self.firing = FiringState()
        self.culprits = Culprits()
        bad = [STATUS_CODES[s] for s in cfg.bad_statuses]
        self._bad_codes = np.array(bad, dtype=np.int64)

    @property
    def _latency_name(self) -> str:
        return "TTFT" if self.cfg.latency_metric == "ttft_ms" else "latency"

    @property
    def bytes_per_series(self) -> float:
        return float(self.st.bytes_per_series())

    def _add(self, sids: npt.NDArray[np.int64], bucket: int, add: npt.NDArray[np.int64]) -> None:
        """Count ``add`` (per series: total, failed, slow) into every tier's bin of ``bucket``."""
        kept_any = np.zeros(sids.size, dtype=np.bool_)
        for t in range(self.mult.size):
            b, n, off = bucket // int(self.mult[t]), int(self.n_bins[t]), int(self.offset[t])
            old = self.st.head[sids, t]
            adv = b > old
            if adv.any():
                # Bins between the old head and the new one are emptied before reuse.
                moved, steps = sids[adv], np.minimum(b - old[adv], n)
                rep = np.repeat(moved, steps)
                back = np.arange(rep.size) - np.repeat(np.cumsum(steps) - steps, steps)
                self.st.counts[rep, off + (b - back) % n] = 0
                self.st.head[moved, t] = b
            # Rows older than the ring are too late to count in this tier.
            kept = b > self.st.head[sids, t] - n
            kept_any |= kept
            self.st.counts[sids[kept], off + b % n] += add[kept].astype(np.uint32)
        self.st.first_bucket[sids[kept_any]] = np.minimum(
            self.st.first_bucket[sids[kept_any]], bucket
        )

    def _burns(self, sids: npt.NDArray[np.int64], bucket: int) -> npt.NDArray[np.float64]:
        """As of ``bucket``: (series, SLO, rule, [long burn, short burn, short requests])."""
        cfg = self.cfg
        cum = []
        for t in range(self.mult.size):
            b, n, off = bucket // int(self.mult[t]), int(self.n_bins[t]), int(self.offset[t])
            back = np.arange(int(self.span[t]))
            got = self.st.counts[sids[:, None], off + (b - back) % n].astype(np.int64)
            # A slot whose bin fell out of the ring (behind a newer head) holds other data.
            got[(b - back)[None, :] <= self.st.head[sids, t][:, None] - n] = 0
            cum.append(np.cumsum(got, axis=1))
        budgets = np.array([1 - cfg.availability_target, 1 - cfg.latency_target])
        covered = (bucket - self.st.first_bucket[sids] + 1) * cfg.bucket_s
        out = np.zeros((sids.size, len(SLOS), len(cfg.rules), 3))
        for r, (rule, ((lt, lk), (st, sk))) in enumerate(zip(cfg.rules, self.windows, strict=True)):
            long_c, short_c = cum[lt][:, lk - 1], cum[st][:, sk - 1]
            ok = covered >= cfg.min_coverage * rule.long_s
            with np.errstate(divide="ignore", invalid="ignore"):
                for s in range(len(SLOS)):
                    lb = np.where(long_c[:, 0] > 0, long_c[:, s + 1] / long_c[:, 0], 0.0)
                    sb = np.where(short_c[:, 0] > 0, short_c[:, s + 1] / short_c[:, 0], 0.0)
                    out[:, s, r, 0] = np.where(ok, lb / budgets[s], 0.0)
                    out[:, s, r, 1] = np.where(ok, sb / budgets[s], 0.0)
                    out[:, s, r, 2] = np.where(ok, short_c[:, 0], 0)
        return out

    def _statistic(self, burns: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Per SLO, worst rule's min(long, short) burn over its factor: 1.0 == threshold."""
        factors = np.array([r.factor for r in self.cfg.rules])
        stat = np.minimum(burns[..., 0], burns[..., 1]) / factors
        stat = np.where(burns[..., 2] >= self.cfg.min_requests, stat, 0.0)
        out: npt.NDArray[np.float64] = stat.max(axis=-1)
        return out

    def _fired(self, burns: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """(series, SLO, rule): the rule fires, both windows at or over its factor."""
        factors = np.array([r.factor for r in self.cfg.rules])
        enough = burns[..., 2] >= self.cfg.min_requests
        out: npt.NDArray[np.bool_] = (
            enough & (burns[..., 0] >= factors) & (burns[..., 1] >= factors)
        )
        return out

    def update(self, batch: InferenceColumns) -> DetectorOutput:
        n = len(batch)
        scores = np.zeros(n, dtype=np.float64)
        if n == 0:
            return DetectorOutput(scores, [])
        cfg = self.cfg
        ts = clean_ts(batch.ts)
        ids = self.st.ids(batch, ts)
        buckets = np.floor(ts / cfg.bucket_s).astype(np.int64)
        failed = np.isin(batch.status, self._bad_codes)
        lat = getattr(batch, cfg.latency_metric)
        slow = np.isfinite(lat) & (lat > cfg.latency_threshold_ms) | np.isposinf(lat)
        in_batch, local = np.unique(ids, return_inverse=True)
        last = np.zeros((in_batch.size, len(SLOS), len(cfg.rules), 3))
        # Bucket by bucket in event time, so every row is scored as of its own minute
        # (with all earlier rows of the batch counted), whatever the batch boundaries.
        order = np.argsort(buckets, kind="stable")
        cuts = np.flatnonzero(np.diff(buckets[order])) + 1
        for rows in np.split(order, cuts):
            bucket = int(buckets[rows[0]])
            sids, inv = np.unique(ids[rows], return_inverse=True)
            add = np.column_stack(
                [
                    np.bincount(inv, minlength=sids.size),
                    np.bincount(inv, weights=failed[rows], minlength=sids.size),
                    np.bincount(inv, weights=slow[rows], minlength=sids.size),
                ]
            ).astype(np.int64)
            self._add(sids, bucket, add)
            # In slices, so a batch of a million new series does not gather GBs at once.
            burns = np.concatenate(
                [self._burns(sids[i : i + _CHUNK], bucket) for i in range(0, sids.size, _CHUNK)]
            )
            stat = self._statistic(burns).max(axis=1)
            scores[rows] = squash(stat[inv], 1.0)
            # Buckets ascend, so ``last`` ends up with each series' newest burn rates.
            last[np.searchsorted(in_batch, sids)] = burns
        findings: list[Finding] = []
        fired = np.any(self._fired(last), axis=(1, 2))
        # Only series that fire now or owe a recovery have anything to say.
        speak = np.flatnonzero(fired | self._was_firing(in_batch))
        if speak.size:
            by_series = np.argsort(local, kind="stable")
            starts = np.searchsorted(local[by_series], np.arange(in_batch.size + 1))
        for j in speak.tolist():
            sid = int(in_batch[j])
            rows = by_series[starts[j] : starts[j + 1]]
            bad = {"availability": failed[rows], "latency": slow[rows]}
            hosts = batch.host[rows]
            findings.extend(self._findings(sid, last[j], float(ts[rows].max()), hosts, bad))
        self._evict(float(ts.max()))
        return DetectorOutput(scores, findings)

    def _was_firing(self, sids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Series with an open episode: they owe a recovery (or a host change) if quiet now."""
        keys = {k[0] for k in self.firing.firing if isinstance(k, tuple)}
        keys |= {k[0] for k in self.culprits.hosts if isinstance(k, tuple)}
        return np.isin(sids, np.fromiter(keys, dtype=np.int64, count=len(keys)))

    def _findings(
        self,
        sid: int,
        burn_arr: npt.NDArray[np.float64],
        ts: float,
        hosts: npt.NDArray[Any],
        bad: dict[str, npt.NDArray[np.bool_]],
    ) -> list[Finding]:
        labels = self.st.labels(sid)
        burns = {
            slo: [(float(lb), float(sb), int(n)) for lb, sb, n in burn_arr[i]]
            for i, slo in enumerate(SLOS)
        }
        stats = self._statistic(burn_arr)
        out: list[Finding] = []
        for i, slo in enumerate(SLOS):
            fired = [
                (rule, lb, sb)
                for rule, (lb, sb, n_short) in zip(self.cfg.rules, burns[slo], strict=True)
                if n_short >= self.cfg.min_requests and lb >= rule.factor and sb >= rule.factor
            ]
            stat = float(stats[i])
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

            if ended is not None:
                self.firing.firing.discard((sid, slo))
                out.append(self._make(labels, ended, slo, ref, stat, ts, False, False))
            verdict = self.firing.step((sid, slo), worst is not None)
            if verdict is not None:
                out.append(
                    self._make(labels, series, slo, ref, stat, ts, worst is not None, verdict)
                )
        return out

    def _make(
        self,
        labels: dict[str, str],
        series: dict[str, str],
        slo: str,
        ref: Any,
        stat: float,
        ts: float,
        fired: bool,
        anomalous: bool,
    ) -> Finding:
        cfg = self.cfg
        rule, lb, sb = ref
        target = cfg.availability_target if slo == "availability" else cfg.latency_target
        what = (
            "requests failing"
            if slo == "availability"
            else f"requests with {self._latency_name} over {fmt(cfg.latency_threshold_ms)} ms"
        )
        text = (
            f"{slo} SLO {target:.3%} for {labels['model']} via {labels['gateway']}: "
            f"{'burning' if fired else 'back under'} error budget at {fmt(lb)}x over "
            f"{_dur(rule.long_s)} and {fmt(sb)}x over {_dur(rule.short_s)} ({what}); "
            f"threshold {fmt(rule.factor)}x"
        )
        if "host" in series:
            text += f"; concentrated on host {series['host']}"
        return self.finding(
            f"slo_burn.{slo}",
            series,
            ts,
            float(squash(stat, 1.0)),
            anomalous,
            observed=lb,
            expected=rule.factor,
            upper=rule.factor,
            severity=rule.severity,
            explanation=text,
        )

    def _evict(self, now: float) -> None:
        gone = self.st.evict(now)
        if gone:
            self.firing.forget_series(gone)
            for key in [k for k in self.culprits.hosts if k[0] in gone]:  # type: ignore[index]
                del self.culprits.hosts[key]


# Bin sizes, in multiples of ``bucket_s``, that tiers may use (round minutes and hours).
_LADDER = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)


def _bin_mult(window_s: float, bucket_s: float, bins: int) -> int:
    """The coarsest ladder multiple of ``bucket_s`` that still cuts the window into ``bins``."""
    fits = [m for m in _LADDER if window_s / (m * bucket_s) >= bins]
    return max(fits, default=1)


def _dur(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{fmt(seconds)}s"
