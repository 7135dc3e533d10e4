"""Distribution drift of model inputs and outputs, per (model, model_version).

Events are folded into per-series windows of event time (``window_s``). Each closed
window's mean per metric goes to one River drift detector (ADWIN, KSWIN or
Page-Hinkley), which decides; the score is the effect size of the window mean
against a slow baseline, in baseline standard deviations (0.5 == ``effect_threshold``).
River is called once per series per metric per window, never per event.

Page-Hinkley's threshold comes from the alert budget (``run_length_threshold``, the
feedback detector's helper): its input is a window mean over the baseline's event
standard deviation, whose in-control spread is at most 1, and with ``delta`` 0.5 each
increment then has ``E0[exp(l)] <= 1``, so a threshold ``h`` has an in-control run
length of at least ``exp(h)`` windows (Lorden). A series runs two one-sided tests per
metric, each one window per ``window_s``: ``h = log(12 x windows per week / budget)``
(13.1 at 30 s windows and the default budget), per series' labels.

Not budgeted, on purpose: ``effect_threshold`` is a practical-relevance floor (a
shift under one standard deviation is not paged however certain); ``confirm_z`` is a
"certain on its own" shortcut at 8 standard errors, far beyond any budget's per-window
tail, because window means of real traffic are overdispersed against a Gaussian z
(prompt mixes move within a day), so no Gaussian z can be calibrated to a rate.

ADWIN and KSWIN (optional methods) test every window, each check with a false-drift
probability of at most its ``delta`` / ``alpha``: unset, both are the budget's share per
check, ``budget / (metrics x windows per week)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from river import drift as _river_drift

from detectors._drift_state import (
    _BASE_MEAN,
    _BASE_VAR,
    _CLOSED,
    _FRESH,
    _LAST_EFFECT,
    _NO_WINDOW,
    _ROWS,
    _SUMS,
    DriftConfig,
    _ph_reset,
    _ph_update,
    _Series,
    _View,
    _window_sums,
)
from detectors._tracking import FiringState, clean_ts, fmt, runs
from detectors.base import Detector, DetectorConfig, DetectorOutput, Finding, Migration, squash
from detectors.registry import Column, SeriesState
from schemas.columns import FINISH_CODES, InferenceColumns

river_drift: Any = _river_drift  # River is untyped

METRICS = (
    "prompt_tokens",
    "completion_tokens",
    "truncation_rate",
    "refusal_rate",
    "embedding_norm",
    "feedback_score",
)
_LENGTH = FINISH_CODES["length"]
_LABELS = ("model", "model_version")
# The state matrix of each series (rows: see _drift_state), its open window, and whether
# the slot holds a series yet (a slot is set to the fresh state on its series' first batch).
_COLUMNS = {
    "table": Column(0.0, np.float64, _FRESH.shape),
    "window": Column(0, np.int64),
    "live": Column(False, np.bool_),
}
# Names that snapshots and tests reach through this module.
__all__ = ["METRICS", "_ROWS", "DriftConfig", "DriftDetector", "_Series", "_ph_reset", "_ph_update"]
# A rate's standard deviation never counts as below this: a metric that was always 0
# should not turn 1 % into an infinite effect.
_MIN_RATE_SD = 0.05


def _from_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """State version 1 kept the stacked arrays beside the registry; before them (git
    2e63970) it kept one ``_Series`` per series, whose learned baselines carry over too."""
    state = dict(payload["state"])
    st = SeriesState(_LABELS, _COLUMNS, ttl_s=1.0)
    old = state.pop("series", None)
    if old is None:
        arrays = {"table": state.pop("table"), "window": state.pop("windows")}
        st.adopt(state.pop("registry"), arrays | {"live": state.pop("live")})
    else:
        st.adopt(state.pop("registry"), {})
        state["rivers"] = {}
        for sid, series in old.items():
            st.table[sid], st.window[sid], st.live[sid] = series.state, series.cur_win, True
            if series.rivers is not None:
                state["rivers"][sid] = series.rivers
    state["st"] = st
    return {**payload, "state": state}


class DriftDetector(Detector[InferenceColumns, DriftConfig]):
    name: ClassVar[str] = "drift"
    consumes: ClassVar[type[InferenceColumns]] = InferenceColumns
    Config: ClassVar[type[DetectorConfig]] = DriftConfig
    state_version: ClassVar[int] = 2
    state_migrations: ClassVar[Mapping[int, Migration]] = {1: _from_v1}

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.st = SeriesState(_LABELS, _COLUMNS, ttl_s=self.cfg.series_ttl_s)
        self.rivers: dict[int, list[Any]] = {}  # per series, for ADWIN and KSWIN only
        self.firing = FiringState()

    @property
    def bytes_per_series(self) -> float:
        # Window sums and baseline arrays, plus the River detectors' own windows.
        per_river = {"adwin": 2_000, "kswin": 4_000, "page_hinkley": 0}[self.cfg.method]
        return float(self.st.bytes_per_series() + per_river * len(METRICS))

    def _view(self, sid: int) -> _View:
        """Series ``sid``, which ``update`` has made live."""
        rivers = None
        if self.cfg.method != "page_hinkley":
            rivers = self.rivers.get(sid)
            if rivers is None:
                rivers = self.rivers[sid] = [self._river(sid, k) for k in range(len(METRICS))]
        return _View(self.st.table, self.st.window, sid, rivers)

    def _river(self, sid: int, k: int) -> Any:
        """ADWIN or KSWIN (Page-Hinkley runs in place: ``_ph_update``), at their set
        confidence or else at the per-check probability the series' budget allows."""
        cfg = self.cfg
        q = cfg.check_q(self.st.labels(sid))
        if cfg.method == "adwin":
            delta = q if cfg.adwin_delta is None else cfg.adwin_delta
            return river_drift.ADWIN(delta=delta, clock=1, grace_period=cfg.warmup_windows)
        alpha = q if cfg.kswin_alpha is None else cfg.kswin_alpha
        return river_drift.KSWIN(alpha=alpha, window_size=60, stat_size=20, seed=cfg.seed + k)

    @staticmethod
    def _values(batch: InferenceColumns, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        """Per-event metric values (rows x metrics); NaN where the event lacks one."""
        vals = np.column_stack(
            [
                batch.prompt_tokens[rows],
                batch.completion_tokens[rows],
                (batch.finish_reason[rows] == _LENGTH).astype(np.float64),
                batch.refusal[rows],
                batch.embedding_norm[rows],
                batch.feedback_score[rows],
            ]
        ).astype(np.float64)
        vals[~np.isfinite(vals)] = np.nan
        return vals

    def _effect(self, s: _View, sums: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Signed effect size of a window's means against the baseline, per metric."""
        return self._effects(sums, s.base_mean, s.base_var, s.closed)

    def _effects(
        self,
        sums: npt.NDArray[np.float64],
        base_mean: npt.NDArray[np.float64],
        base_var: npt.NDArray[np.float64],
        closed: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        """``_effect`` of one series (sums: 3 x metrics) or of many at once (series x 3 x
        metrics, the rest series x metrics): the same operations, so the same floats."""
        count = sums[..., 0, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sums[..., 1, :] / count
            sd = np.sqrt(base_var)
        sd[..., 2:4] = np.maximum(sd[..., 2:4], _MIN_RATE_SD)
        sd = np.maximum(sd, 1e-9 + 0.01 * np.abs(np.nan_to_num(base_mean)))
        eff = (mean - base_mean) / sd
        # Partial or thin windows count for less: their means are noisy.
        eff *= np.minimum(1.0, count / self.cfg.min_events)
        eff[(closed < self.cfg.warmup_windows) | (count == 0)] = 0.0
        out: npt.NDArray[np.float64] = np.nan_to_num(eff, nan=0.0, posinf=0.0, neginf=0.0)
        return out

    def _certain(self, s: _View, k: int) -> bool:
        """The open window's mean is ``confirm_z`` standard errors off the baseline (the
        unfloored event spread, so a rare rate is tested as the binomial it is)."""
        n = s.sums[0, k]
        if n < self.cfg.min_events or s.closed[k] < self.cfg.warmup_windows:
            return False
        sd = math.sqrt(s.base_var[k])
        if not sd > 0:
            return False
        z = float(s.sums[1, k] / n - s.base_mean[k]) / (sd / math.sqrt(n))
        return abs(z) >= self.cfg.confirm_z

    def _close(self, s: _View) -> None:
        cfg = self.cfg
        count, total, sq = s.sums
        s.last_effect = self._effect(s, s.sums)
        h = cfg.page_hinkley_h(self.st.labels(s.sid)) if s.rivers is None else 0.0
        for k in range(len(METRICS)):
            if count[k] == 0:
                continue
            mean = total[k] / count[k]
            var = max(sq[k] / count[k] - mean * mean, 0.0)
            if s.closed[k] == 0:
                s.base_mean[k], s.base_var[k] = mean, var
            else:
                a = (
                    cfg.baseline_alpha
                    if s.closed[k] >= cfg.warmup_windows
                    else 1 / (s.closed[k] + 1)
                )
                if abs(s.last_effect[k]) >= cfg.effect_threshold:
                    # A drifted window teaches the baseline slowly, so the drift stays
                    # visible for a while but a lasting change becomes the new normal.
                    a *= cfg.drifted_learning
                d = mean - s.base_mean[k]
                s.base_mean[k] += a * d
                s.base_var[k] = (1 - a) * (s.base_var[k] + a * d * d) + a * var
            s.closed[k] += 1
            scale = math.sqrt(s.base_var[k]) or 1.0
            if s.rivers is None:
                drifted = _ph_update(s.state, k, mean / scale, cfg, h)
            else:
                s.rivers[k].update(mean / scale)
                drifted = s.rivers[k].drift_detected
            if drifted and s.closed[k] > cfg.warmup_windows:
                s.confirmed[k] = s.cur_win
        s.sums = np.zeros_like(s.sums)

    def update(self, batch: InferenceColumns) -> DetectorOutput:
        n = len(batch)
        scores = np.zeros(n, dtype=np.float64)
        if n == 0:
            return DetectorOutput(scores, [])
        cfg = self.cfg
        ts = clean_ts(batch.ts)
        ids = self.st.ids(batch, ts)
        table, windows, live = self.st.table, self.st.window, self.st.live
        wins = np.floor(ts / cfg.window_s).astype(np.int64)
        vals = self._values(batch, np.arange(n))
        order, starts = runs(ids)
        sids = ids[order[starts]]
        sizes = np.diff(np.r_[starts, n])
        # A slot is set to the fresh state when its series first shows.
        fresh = sids[~live[sids]]
        table[fresh] = _FRESH
        windows[fresh] = _NO_WINDOW
        live[fresh] = True
        # A series whose rows all fall in its open window (or that has no data yet) only
        # adds to its sums: done for all such series at once. The others close a window
        # (River, the baseline), one at a time below.
        w_lo = np.minimum.reduceat(wins[order], starts)
        w_hi = np.maximum.reduceat(wins[order], starts)
        cur = windows[sids]
        empty = ~table[sids, _SUMS].any(axis=1)
        batched = (w_lo == w_hi) & ((w_hi <= cur) | empty) & self._batched
        to_report = self._add_open(batched, sids, sizes, order, vals, w_hi, scores)
        t_max = np.maximum.reduceat(ts[order], starts).tolist()
        findings: list[Finding] = []
        bounds = np.r_[starts, n].tolist()
        for i, sid in enumerate(sids.tolist()):
            if batched[i]:
                if to_report[i]:
                    findings.extend(self._findings(sid, self._view(sid), t_max[i]))
                continue
            rows = order[bounds[i] : bounds[i + 1]]
            findings.extend(self._one_series(sid, rows, vals[rows], wins[rows], scores, t_max[i]))
        self._evict(float(ts.max()))
        return DetectorOutput(scores, findings)

    _batched = True  # tests turn it off to check the batched path against this one

    def _one_series(
        self,
        sid: int,
        rows: npt.NDArray[np.intp],
        vals: npt.NDArray[np.float64],
        w: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float64],
        t_max: float,
    ) -> list[Finding]:
        """One series' rows, window by window: a window that opens closes the last one."""
        cfg = self.cfg
        s = self._view(sid)
        uniq, inv = np.unique(w, return_inverse=True)
        for j, win in enumerate(uniq.tolist()):
            if win > s.cur_win:
                if s.sums[0].any():
                    self._close(s)
                s.cur_win = win
            s.sums += _window_sums(vals[inv == j], np.zeros(1, dtype=np.intp))[0]
            eff = np.abs(self._effect(s, s.sums))
            scores[rows[inv == j]] = squash(eff.max(), cfg.effect_threshold)
        return self._findings(sid, s, t_max)

    def _add_open(
        self,
        batched: npt.NDArray[np.bool_],
        sids: npt.NDArray[np.int64],
        sizes: npt.NDArray[np.intp],
        order: npt.NDArray[np.intp],
        vals: npt.NDArray[np.float64],
        window: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.bool_]:
        """Add the rows of the ``batched`` series (each all in one open window) to their
        sums and score them; returns, per series, whether it can have a finding (the
        rest would report nothing, so ``_findings`` is skipped for them)."""
        cfg = self.cfg
        report = np.zeros(sids.size, dtype=np.bool_)
        if not batched.any():
            return report
        mine = sids[batched]
        rows = order[np.repeat(batched, sizes)]
        counts = sizes[batched]
        added = _window_sums(vals[rows], np.r_[0, np.cumsum(counts)[:-1]])
        table, windows = self.st.table, self.st.window
        sums = table[mine, _SUMS:_BASE_MEAN] + added
        table[mine, _SUMS:_BASE_MEAN] = sums
        windows[mine] = np.maximum(windows[mine], window[batched])
        st = table[mine]
        live = self._effects(sums, st[:, _BASE_MEAN], st[:, _BASE_VAR], st[:, _CLOSED])
        scores[rows] = np.repeat(squash(np.abs(live).max(axis=1), cfg.effect_threshold), counts)
        shown = np.where(sums[:, 0] >= cfg.min_events, live, st[:, _LAST_EFFECT])
        hot = (np.abs(live) >= cfg.effect_threshold) | (np.abs(shown) >= cfg.effect_threshold)
        can = hot.any(axis=1)
        firing = {k[0] for k in self.firing.firing if isinstance(k, tuple)}
        if firing:
            can |= np.isin(mine, np.fromiter(firing, dtype=np.int64, count=len(firing)))
        report[batched] = can
        return report

    def _findings(self, sid: int, s: _View, ts: float) -> list[Finding]:
        cfg = self.cfg
        live = self._effect(s, s.sums)
        out: list[Finding] = []
        for k, metric in enumerate(METRICS):
            # The open window, when it already has enough events, else the last closed one.
            eff = live[k] if s.sums[0, k] >= cfg.min_events else s.last_effect[k]
            if abs(live[k]) >= cfg.effect_threshold and self._certain(s, k):
                s.confirmed[k] = s.cur_win
            # River confirms the change once; it stays an incident while the effect lasts.
            recent = s.cur_win - s.confirmed[k] <= cfg.hold_windows
            ongoing = (sid, metric) in self.firing.firing
            anomalous = bool((recent or ongoing) and abs(eff) >= cfg.effect_threshold)
            verdict = self.firing.step((sid, metric), anomalous)
            if verdict is not None:
                out.append(self._make(sid, s, k, float(eff), ts, verdict))
        return out

    def _make(self, sid: int, s: _View, k: int, eff: float, ts: float, anomalous: bool) -> Finding:
        cfg = self.cfg
        labels = self.st.labels(sid)
        base = float(s.base_mean[k])
        observed = base + eff * (math.sqrt(s.base_var[k]) or 0.0)
        cnt = s.sums[0, k]
        if cnt >= cfg.min_events:
            observed = float(s.sums[1, k] / cnt)
        rel = (observed - base) / abs(base) if base else 0.0
        spread = max(math.sqrt(s.base_var[k]), 1e-9)
        text = (
            f"{METRICS[k]} for {labels['model']} {labels['model_version']}: "
            f"{fmt(observed)} vs baseline {fmt(base)} ({rel:+.0%}, {eff:+.1f} sd)"
            + (f"; {cfg.method} confirmed drift" if anomalous else "; back within range")
        )
        return self.finding(
            f"drift.{METRICS[k]}",
            labels,
            ts,
            float(squash(abs(eff), cfg.effect_threshold)),
            anomalous,
            observed=observed,
            expected=base,
            lower=base - cfg.effect_threshold * spread,
            upper=base + cfg.effect_threshold * spread,
            explanation=text,
        )

    def _evict(self, now: float) -> None:
        gone = self.st.evict(now)
        if gone:
            for sid in gone:
                self.rivers.pop(sid, None)
            self.firing.forget_series(gone)
