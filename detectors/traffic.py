"""Traffic: a series or a whole gateway goes silent, or its request rate collapses.

Per (model, gateway) and per gateway the detector learns the expected inter-arrival
time (heartbeat kernel). Silence is ``(now - last event) / expected gap``: for Poisson
traffic the chance of a gap ``f`` times the mean is ``exp(-f)``, and a series makes
``week / mean gap`` gaps a week, so its alert budget (``alert_budget``, per series label
``alert_budget_overrides``: ``detectors.budget``) sets ``f = ln(week / (mean gap x
budget))``: 17.5 for a series with an event every 30 ms at 0.5 false alerts a week, 9.9
for one a minute. ``silence_factor``, when set, fixes it instead; ``min_silence_s`` stays
a hard floor (a fast series is not silent after a fraction of a second).
``tick(now)`` checks it when no events arrive at all.

Rate collapse: requests per (model, gateway) are counted in ``bin_s`` bins; each closed
bin's count, variance-stabilised (Anscombe: ``2 * sqrt(c + 3/8)`` is about N(2 sqrt(rate),
1)), is compared with an hour-of-week seasonal baseline (falling back to the series'
overall level until a bucket has history). A drop alerts at the z whose one-sided tail
is the budget's share of the week's bins (0.5 a week at 60 s bins: 3.89), unless
``threshold_z`` fixes it. Bins more than that below are not learned. Row scores are
the worst of the silence ratio before the row and the drop z of the last closed bin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from detectors import kernels
from detectors._tracking import FiringState, clean_ts, fmt, groups
from detectors._traffic_config import TrafficConfig as TrafficConfig
from detectors.base import Detector, DetectorConfig, DetectorOutput, Finding, Migration, squash
from detectors.budget import WEEK_S, budget_z
from detectors.registry import Column, SeriesState
from schemas.columns import InferenceColumns

F64 = npt.NDArray[np.float64]
_H = kernels.HOURS_PER_WEEK


_HEARTBEAT = {"last_t": Column(-np.inf), "gap_mean": Column(0.0), "gap_w": Column(0.0)}
# Per series: the open bin and its count, the last closed bin's drop z, and the
# hour-of-week (b_*) and overall (g_*) baselines of the stabilised counts.
_RATE = {
    "cur_bin": Column(-1, np.int64),
    "cur_count": Column(0.0),
    "drop_z": Column(0.0),
    "b_mean": Column(0.0, np.float64, (_H,)),
    "b_var": Column(0.0, np.float64, (_H,)),
    "b_w": Column(0.0, np.float64, (_H,)),
    "g_mean": Column(0.0),
    "g_var": Column(0.0),
    "g_w": Column(0.0),
}


class _Heartbeat:
    """State version 1's heartbeat (a registry and three arrays); only unpickled."""


def _from_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """State version 2 predates budgets: the pickled config lacks them (the one built from
    params stays) and no series has a budget of its own yet."""
    state = {k: v for k, v in payload["state"].items() if k != "config"}
    return {**payload, "state": {**state, "budgets": {}}}


def _from_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """State version 1 kept the per-series arrays as attributes (grown with setattr)."""
    state = dict(payload["state"])
    series = SeriesState(("model", "gateway"), _HEARTBEAT | _RATE, ttl_s=1.0)
    old = state.pop("series").__dict__
    series.adopt(old["registry"], {**old, **{k: state.pop(k) for k in _RATE}})
    gateways = SeriesState(("gateway",), _HEARTBEAT, ttl_s=1.0)
    gateways.adopt(state["gateways"].registry, state.pop("gateways").__dict__)
    return {**payload, "state": {**state, "series": series, "gateways": gateways}}


class TrafficDetector(Detector[InferenceColumns, TrafficConfig]):
    name: ClassVar[str] = "traffic"
    consumes: ClassVar[type[InferenceColumns]] = InferenceColumns
    Config: ClassVar[type[DetectorConfig]] = TrafficConfig
    state_version: ClassVar[int] = 3
    state_migrations: ClassVar[Mapping[int, Migration]] = {1: _from_v1, 2: _from_v2}

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        ttl = self.cfg.series_ttl_s
        self.series = SeriesState(("model", "gateway"), _HEARTBEAT | _RATE, ttl_s=ttl)
        self.gateways = SeriesState(("gateway",), _HEARTBEAT, ttl_s=ttl)
        self.firing = FiringState()
        self._due: float | None = None  # next_deadline, until update or tick changes it
        # Budgets of series (by level and id) where budget overrides are configured.
        self.budgets: dict[tuple[str, int], float] = {}

    def _budget(self, name: str, hb: SeriesState, ids: npt.NDArray[np.int64]) -> F64:
        """Per series ``ids`` of level ``name``: its alert budget (false alerts a week)."""
        cfg = self.cfg
        out = np.full(ids.shape, cfg.alert_budget.false_alerts_per_series_week)
        if cfg.alert_budget_overrides:
            for i, sid in enumerate(ids.tolist()):
                b = self.budgets.get((name, sid))
                if b is None:
                    b = self.budgets[name, sid] = cfg.budget_for(hb.registry.labels(sid))
                out[i] = b
        return out

    def _factor(self, name: str, hb: SeriesState, ids: npt.NDArray[np.int64]) -> F64:
        """Per series: the silence factor, fixed or from its budget and expected gap."""
        if self.cfg.silence_factor is not None:
            return np.full(ids.shape, self.cfg.silence_factor)
        gap = np.maximum(hb.gap_mean[ids], 1e-9)
        out: F64 = np.maximum(np.log(WEEK_S / (gap * self._budget(name, hb, ids))), 1.0)
        return out

    def _drop_z(self, sid: int) -> float:
        """A series' rate-drop threshold, fixed or from its budget (one test a bin)."""
        cfg = self.cfg
        if cfg.threshold_z is not None:
            return cfg.threshold_z
        budget = cfg.alert_budget.false_alerts_per_series_week
        if cfg.alert_budget_overrides:
            budget = float(self._budget("series", self.series, np.array([sid]))[0])
        return budget_z(budget, cfg.bin_s)  # cached

    @property
    def _clip(self) -> float:
        """Gaps are winsorised at this many expected gaps when learned."""
        return self.cfg.silence_factor or 15.0

    @property
    def bytes_per_series(self) -> float:
        return float(self.series.bytes_per_series())

    def _close_bins(self, sid: int, upto: int) -> None:
        """Close bins [cur_bin, upto) of one series: learn and score their counts."""
        cur = int(self.series.cur_bin[sid])
        if cur < 0 or upto <= cur:
            return
        cfg = self.cfg
        bins = np.arange(max(cur, upto - cfg.max_empty_bins), upto, dtype=np.int64)
        counts = np.zeros(bins.size)
        if bins[0] == cur:
            counts[0] = self.series.cur_count[sid]
        y = 2.0 * np.sqrt(counts + 0.375)
        z, _, _ = kernels.seasonal_update(
            np.full(bins.size, sid, dtype=np.int64),
            bins * cfg.bin_s,
            y,
            self.series.b_mean,
            self.series.b_var,
            self.series.b_w,
            self.series.g_mean,
            self.series.g_var,
            self.series.g_w,
            cfg.seasonal_alpha,
            cfg.level_alpha,
            cfg.min_bins,
            1.0,
            -self._drop_z(sid),
            np.inf,
        )
        self.series.drop_z[sid] = max(-float(z[-1]), 0.0)
        self.series.cur_bin[sid] = upto
        self.series.cur_count[sid] = 0.0

    def update(self, batch: InferenceColumns) -> DetectorOutput:
        self._due = None
        n = len(batch)
        scores = np.zeros(n, dtype=np.float64)
        if n == 0:
            return DetectorOutput(scores, [])
        cfg = self.cfg
        ts = clean_ts(batch.ts)
        order = np.argsort(ts, kind="stable")
        beats = [(self.series, self.series.ids(batch, ts))]
        if cfg.gateway_level:
            beats.append((self.gateways, self.gateways.ids(batch, ts)))
        sids = beats[0][1]
        for hb, ids in beats:
            ratio = kernels.heartbeat_update(
                ids[order],
                ts[order],
                hb.last_t,
                hb.gap_mean,
                hb.gap_w,
                cfg.gap_alpha,
                cfg.min_events,
                self._clip,
            )
            name = "series" if hb is self.series else "gateway"
            factor = self._factor(name, hb, ids[order])
            # squash(r, f) with a per-series f: r / (r + f) == squash(r / f, 1).
            scores[order] = np.maximum(scores[order], squash(ratio / factor, 1.0))
        bins = np.floor(ts / cfg.bin_s).astype(np.int64)
        for sid, rows in groups(sids):
            rows = rows[np.argsort(ts[rows], kind="stable")]
            if self.series.cur_bin[sid] < 0:
                self.series.cur_bin[sid] = bins[rows[0]]
            for b, sub in _runs(bins[rows], rows):
                if b > self.series.cur_bin[sid]:
                    self._close_bins(sid, b)
                thr = self._drop_z(sid)
                scores[sub] = np.maximum(scores[sub], squash(self.series.drop_z[sid], thr))
                self.series.cur_count[sid] += sub.size if b == self.series.cur_bin[sid] else 0
        now = float(ts.max())
        findings = self._findings(now, set(sids.tolist()))
        self._evict(now)
        return DetectorOutput(scores, findings)

    def tick(self, now: float) -> list[Finding]:
        self._due = None
        if not np.isfinite(now):
            return []
        upto = int(np.floor(now / self.cfg.bin_s))
        active = self.series.registry.active_ids()
        for sid in active.tolist():
            self._close_bins(sid, upto)
        findings = self._findings(now, set(active.tolist()))
        self._evict(now)
        return findings

    def _evict(self, now: float) -> None:
        """Forget series (and gateways) silent past ``series_ttl_s``: a decommissioned
        gateway stops being watched (its silence alert then resolves by timeout), and a
        long-running worker does not keep every model/gateway pair it ever saw."""
        for name, hb in (("series", self.series), ("gateway", self.gateways)):
            gone = hb.evict(now)
            if gone:
                keys = {(name, sid) for sid in gone}  # firing keys are (level, series id)
                self.firing.forget(keys.__contains__)
                for key in keys:
                    self.budgets.pop(key, None)
                self._due = None

    def next_deadline(self, now: float) -> float:
        """The next bin to close or silence to begin: the only times ``tick`` can report
        something new (a silent series stays silent until data, a drop holds to the next
        bin). It depends on the learned state only, so it is kept until that changes."""
        cached = self.__dict__.get("_due")
        if cached is not None:
            return float(cached)
        cfg = self.cfg
        due = float("inf")
        ids = self.series.registry.active_ids()
        cur = self.series.cur_bin[ids] if ids.size else ids
        cur = cur[cur >= 0]
        if cur.size:
            nxt = int(cur.min()) + 1
            t = nxt * cfg.bin_s
            while np.floor(t / cfg.bin_s) < nxt:  # the boundary as tick computes it
                t = float(np.nextafter(t, np.inf))
            due = t
        levels = [("gateway", self.gateways)] if cfg.gateway_level else []
        for name, hb in [*levels, ("series", self.series)]:
            due = min(due, self._silence_due(name, hb))
        self._due = due
        return due

    def _silence_due(self, name: str, hb: SeriesState) -> float:
        """When the first series not yet reported silent becomes silent (possibly in
        the past: data moved event time on without a tick, and the engine ticks now)."""
        cfg = self.cfg
        ids = hb.registry.active_ids()
        # Few series are silent at a time: mask those out rather than test every id.
        silent = [k[1] for k in self.firing.firing if isinstance(k, tuple) and k[0] == name]
        if name == "series" and cfg.gateway_level:
            gone = {k[1] for k in self.firing.firing if isinstance(k, tuple) and k[0] == "gateway"}
            gws = {self.gateways.registry.labels(g)["gateway"] for g in gone}
            silent += [s for s in ids.tolist() if hb.registry.labels(s)["gateway"] in gws]
        if silent:
            ids = ids[~np.isin(ids, np.asarray(silent, dtype=np.int64))]
        if ids.size == 0:
            return float("inf")
        last, mean, w = hb.last_t[ids], hb.gap_mean[ids], hb.gap_w[ids]
        warm = (w >= cfg.min_events) & (mean > 0.0) & np.isfinite(last)
        if not warm.any():
            return float("inf")
        last, mean = last[warm], mean[warm]
        factor = self._factor(name, hb, ids[warm])
        t = last + np.maximum(factor * mean, cfg.min_silence_s)
        # Nudge by ulps until the test _findings applies holds at t, so the engine's tick
        # at this time is the one that sees the silence.
        for _ in range(8):
            ok = (np.maximum(t - last, 0.0) / mean >= factor) & (t - last >= cfg.min_silence_s)
            if ok.all():
                break
            t = np.where(ok, t, np.nextafter(t, np.inf))
        return float(t.min())

    def _findings(self, now: float, touched: set[int]) -> list[Finding]:
        cfg = self.cfg
        out: list[Finding] = []
        silent_gw: set[str] = set()
        levels = [("gateway", self.gateways)] if cfg.gateway_level else []
        for name, hb in [*levels, ("series", self.series)]:
            ids = hb.registry.active_ids()
            ratio = kernels.silence_ratio(
                ids, now, hb.last_t, hb.gap_mean, hb.gap_w, cfg.min_events
            )
            factors = self._factor(name, hb, ids).tolist()
            for sid, r, f in zip(ids.tolist(), ratio.tolist(), factors, strict=True):
                labels = hb.registry.labels(sid)
                idle = now - float(hb.last_t[sid])
                silent = r >= f and idle >= cfg.min_silence_s
                if name == "series" and labels["gateway"] in silent_gw:
                    silent = False  # the gateway's finding covers it
                if silent and name == "gateway":
                    silent_gw.add(labels["gateway"])
                expected = float(hb.gap_mean[sid])
                who = (
                    f"gateway {labels['gateway']}"
                    if name == "gateway"
                    else f"{labels['model']} on {labels['gateway']}"
                )

                verdict = self.firing.step((name, sid), silent)
                if verdict is None:
                    continue
                text = (
                    f"no requests for {fmt(idle)} s from {who}; expected one every "
                    f"{fmt(expected)} s ({fmt(r)}x)"
                    if verdict
                    else f"requests from {who} resumed"
                )
                out.append(
                    self.finding(
                        f"traffic.{name}_silent",
                        labels,
                        now,
                        float(squash(r, f)),
                        verdict,
                        observed=idle,
                        expected=expected,
                        upper=expected * f,
                        severity="critical" if name == "gateway" else "error",
                        explanation=text,
                        scope={"gateway": labels["gateway"]} if name == "gateway" else None,
                    )
                )
        for sid in sorted(touched):
            z = float(self.series.drop_z[sid])
            thr = self._drop_z(sid)
            verdict = self.firing.step(("drop", sid), z >= thr)
            if verdict is None:
                continue
            labels = self.series.labels(sid)
            text = (
                f"request rate of {labels['model']} on {labels['gateway']} "
                f"{fmt(z)} sd below its usual level for this hour"
                + ("" if verdict else " (back to normal)")
            )
            out.append(
                self.finding(
                    "traffic.rate_drop",
                    labels,
                    now,
                    float(squash(z, thr)),
                    verdict,
                    observed=-z,
                    expected=0.0,
                    lower=-thr,
                    explanation=text,
                )
            )
        return out


def _runs(
    values: npt.NDArray[np.int64], rows: npt.NDArray[np.intp]
) -> list[tuple[int, npt.NDArray[np.intp]]]:
    """Consecutive equal ``values`` (sorted) with their rows."""
    cuts = np.flatnonzero(np.diff(values)) + 1
    return [(int(values[c[0]]), rows[c]) for c in np.split(np.arange(values.size), cuts)]
