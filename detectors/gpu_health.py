"""GPU health from NVML samples, per GPU, with a per-host multivariate check.

Per GPU: sustained clock throttling (NVML clocks-event reasons, idle excluded), XID
errors, ECC double-bit error increases, memory growth that will fill the GPU
(a leak: a steady long trend, or a fast short one that outgrows the median GPU's) and
utilisation collapse of a busy GPU. Per host (off by default, ``hst_enabled``): a small
River HalfSpaceTrees over host aggregates, fed at most once per ``hst_interval_s`` of
event time, for oddities no single rule names. Every finding is scoped to the
host, so the lifecycle can inhibit latency alerts from requests served there.

No decision here takes an alert budget (a false-alert rate), on purpose:

* an XID or a double-bit ECC error increase is a categorical hardware fault, an
  incident on its own: there is no in-control rate of them to tolerate, and one
  healthy GPU never reports either, so a budget would only delay or drop real faults;
* the throttle fraction, memory growth and utilisation collapse are judged against
  physical and operational limits (throttled ``throttle_fraction`` of the time, memory
  full within ``leak_horizon_s``, a busy GPU below ``util_collapse_pct``), not against
  the GPU's own history: a tail learned per GPU would make a chronically throttled or
  chronically idle GPU its own normal, which is the fault to report. Their noise is
  handled where it arises (EWMA windows, the trend's R^2, the fleet's median slope).

The optional host HalfSpaceTrees score (off by default) keeps its fixed threshold.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from river import anomaly

from detectors._gpu_state import (
    BITS_BY_NAME,
    CRITICAL_XIDS,
    HARDWARE_THROTTLES,
    GpuHealthConfig,
    GpuState,
    decode_reasons,
)
from detectors._tracking import FiringState, clean_ts, fmt, groups, labels_of
from detectors.base import Detector, DetectorConfig, DetectorOutput, Finding, squash
from detectors.registry import SeriesRegistry
from schemas.columns import GpuColumns

KINDS = ("throttle", "xid", "ecc_dbe", "memory_leak", "util_collapse")
_HST_FEATURES = ("temp", "power", "sm_util", "mem_util", "mem_used")
# Score statistic for a single event that is an incident on its own (XID, DBE).
_EVENT_Z = {"critical": 20.0, "warning": 1.5}


class _Host:
    """Per-host aggregate of the current interval and its HalfSpaceTrees model."""

    __slots__ = ("learned", "model", "next_ts", "score", "sums")

    def __init__(self, cfg: GpuHealthConfig, seed: int) -> None:
        self.model: Any = anomaly.HalfSpaceTrees(
            n_trees=cfg.hst_trees, height=cfg.hst_height, window_size=cfg.hst_window, seed=seed
        )
        self.sums = np.zeros(len(_HST_FEATURES) + 1)
        self.next_ts = -math.inf
        self.learned = 0
        self.score = 0.0


class GpuHealthDetector(Detector[GpuColumns, GpuHealthConfig]):
    name: ClassVar[str] = "gpu_health"
    consumes: ClassVar[type[GpuColumns]] = GpuColumns
    Config: ClassVar[type[DetectorConfig]] = GpuHealthConfig

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.registry = SeriesRegistry(
            ("host", "gpu_uuid", "gpu_index"), ttl_s=self.cfg.series_ttl_s, initial_capacity=8
        )
        self.gpus: dict[int, GpuState] = {}
        self.hosts: dict[str, _Host] = {}
        self.firing = FiringState()
        mask = 0
        for reason in self.cfg.throttle_reasons:
            mask |= BITS_BY_NAME[reason]
        self._throttle_mask = mask
        self._fleet_fast_slope = 0.0

    @property
    def bytes_per_series(self) -> float:
        hst = self.cfg.hst_trees * (2 ** (self.cfg.hst_height + 1)) * 64 if self.hosts else 0
        per_host = hst * len(self.hosts) / max(len(self.gpus), 1)
        return float(2 * 22 * 16 + per_host)

    def update(self, batch: GpuColumns) -> DetectorOutput:
        n = len(batch)
        scores = np.zeros(n, dtype=np.float64)
        if n == 0:
            return DetectorOutput(scores, [])
        ts = clean_ts(batch.ts)
        index = np.array([str(i) for i in batch.gpu_index.tolist()], dtype=object)
        ids = self.registry.ids_for(labels_of((batch.host, batch.gpu_uuid, index)), ts)
        findings: list[Finding] = []
        for sid, rows in groups(ids):
            labels = self.registry.labels(sid)
            gpu = self.gpus.get(sid)
            if gpu is None:
                gpu = self.gpus[sid] = GpuState(labels["host"])
            scores[rows] = self._update_gpu(gpu, batch, rows, ts)
            findings.extend(self._gpu_findings(sid, gpu, labels))
        self._update_fleet_slope()
        if self.cfg.hst_enabled:
            host_scores = self._update_hosts(batch, ts)
            host_col = labels_of((batch.host,))[0]
            hst = np.array([host_scores.get(str(h), 0.0) for h in host_col.tolist()])
            scores = np.maximum(scores, hst)
            findings.extend(self._host_findings(float(ts.max())))
        self._evict(float(ts.max()))
        return DetectorOutput(scores, findings)

    def _update_gpu(
        self, gpu: GpuState, b: GpuColumns, rows: npt.NDArray[np.intp], ts: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        cfg = self.cfg
        t_alpha = 1.0 / cfg.throttle_window
        l_alpha = 2.0 / (cfg.leak_window + 1)
        out = np.zeros(rows.size)
        cols = zip(
            ts[rows].tolist(),
            b.clocks_event_reasons[rows].tolist(),
            b.xid[rows].tolist(),
            b.ecc_dbe_total[rows].tolist(),
            b.mem_used_mib[rows].tolist(),
            b.mem_total_mib[rows].tolist(),
            b.sm_util_pct[rows].tolist(),
            strict=True,
        )
        for j, (t, reasons, xid, dbe, used, total, util) in enumerate(cols):
            gpu.last_ts = max(gpu.last_ts, t)
            z = 0.0
            bad = int(reasons) & self._throttle_mask
            gpu.throttle_frac += t_alpha * ((1.0 if bad else 0.0) - gpu.throttle_frac)
            gpu.throttle_bits = (gpu.throttle_bits | bad) if gpu.throttle_frac > 0.05 else bad
            z = max(z, gpu.throttle_frac / cfg.throttle_fraction)
            if xid > 0:
                gpu.xid, gpu.xid_ts = xid, t
                z = max(z, _EVENT_Z["critical" if xid in CRITICAL_XIDS else "warning"])
            if dbe >= 0:
                if gpu.dbe >= 0 and dbe > gpu.dbe:
                    gpu.dbe_delta, gpu.dbe_ts = dbe - gpu.dbe, t
                    z = max(z, _EVENT_Z["critical"])
                gpu.dbe = dbe
            if math.isfinite(used) and math.isfinite(total) and total > 0:
                gpu.update_leak(t, used, total, l_alpha)
                if gpu.fast is None:
                    gpu.fast = GpuState(gpu.host)
                gpu.fast.update_leak(t, used, total, 2.0 / (cfg.fast_leak_window + 1))
                _, ttf = self._leak(gpu)
                z = max(z, cfg.leak_horizon_s / ttf if ttf > 0 else _EVENT_Z["critical"])
            if math.isfinite(util):
                gpu.update_util(
                    util, cfg.util_fast_alpha, cfg.util_slow_alpha, self._collapse(gpu) >= 0.5
                )
                z = max(z, self._collapse(gpu))
            out[j] = z
        # Each statistic is 1.0 at its own threshold, so one squash serves them all.
        return squash(out, 1.0)

    def _leak(self, gpu: GpuState) -> tuple[float, float]:
        """(slope, seconds to full) of the long trend, else of a fast short one."""
        cfg = self.cfg
        slope, ttf = gpu.leak(cfg.leak_window // 2, cfg.leak_min_r2)
        if math.isfinite(ttf) or gpu.fast is None:
            return slope, ttf
        fast, fast_ttf = gpu.fast.leak(cfg.fast_leak_window // 2, cfg.fast_leak_min_r2)
        excess = fast - max(self._fleet_fast_slope, 0.0)
        if excess * 60.0 >= cfg.fast_leak_pct_per_min / 100.0 * gpu.mem_total > 0:
            return fast, fast_ttf
        return slope, ttf

    def _update_fleet_slope(self) -> None:
        """Median short-trend memory slope over the GPUs (the common, load-driven part)."""
        n = self.cfg.fast_leak_window // 2
        slopes = [
            g.fast.cov_tm / g.fast.var_t
            for g in self.gpus.values()
            if g.fast is not None and g.fast.n_leak >= n and g.fast.var_t > 0
        ]
        self._fleet_fast_slope = float(np.median(slopes)) if len(slopes) >= 3 else 0.0

    def _collapse(self, gpu: GpuState) -> float:
        cfg = self.cfg
        if gpu.n_util < cfg.util_warmup or gpu.util_slow < cfg.util_busy_pct:
            return 0.0
        return max(gpu.util_slow - gpu.util_fast, 0.0) / max(
            gpu.util_slow - cfg.util_collapse_pct, 1e-9
        )

    def _gpu_findings(self, sid: int, gpu: GpuState, labels: dict[str, str]) -> list[Finding]:
        cfg = self.cfg
        t = gpu.last_ts
        where = f"GPU {labels['gpu_index']} ({labels['gpu_uuid']}) on {labels['host']}"
        slope, ttf = self._leak(gpu)
        collapse = self._collapse(gpu)
        xid_critical = gpu.xid in CRITICAL_XIDS
        hw = bool(gpu.throttle_bits & HARDWARE_THROTTLES)
        # kind -> (anomalous, statistic (1 == threshold), severity, observed, expected, text)
        checks: dict[str, tuple[bool, float, str, float, float, str]] = {
            "throttle": (
                gpu.throttle_frac >= cfg.throttle_fraction,
                gpu.throttle_frac / cfg.throttle_fraction,
                "error" if hw else "warning",
                gpu.throttle_frac,
                cfg.throttle_fraction,
                f"{where} throttled in {gpu.throttle_frac:.0%} of recent samples "
                f"({', '.join(decode_reasons(gpu.throttle_bits)) or 'no reason now'})",
            ),
            "xid": (
                gpu.xid > 0 and t - gpu.xid_ts <= cfg.event_hold_s,
                _EVENT_Z["critical" if xid_critical else "warning"],
                "critical" if xid_critical else "warning",
                float(gpu.xid),
                0.0,
                f"{where} reported XID {gpu.xid}"
                + (" (critical: drain and reset)" if xid_critical else ""),
            ),
            "ecc_dbe": (
                gpu.dbe_delta > 0 and t - gpu.dbe_ts <= cfg.event_hold_s,
                _EVENT_Z["critical"],
                "critical",
                float(gpu.dbe_delta),
                0.0,
                f"{where} ECC double-bit errors rose by {gpu.dbe_delta} to {gpu.dbe}",
            ),
            "memory_leak": (
                ttf <= cfg.leak_horizon_s,
                cfg.leak_horizon_s / ttf if ttf > 0 else 20.0,
                "error" if ttf <= cfg.leak_horizon_s / 4 else "warning",
                slope,
                0.0,
                f"{where} memory grows {fmt(slope * 60)} MiB/min "
                f"({fmt(gpu.mem_used)} of {fmt(gpu.mem_total)} MiB used), "
                + (f"full in ~{fmt(ttf / 60)} min" if math.isfinite(ttf) else "no longer growing"),
            ),
            "util_collapse": (
                collapse >= 1.0,
                collapse,
                "error",
                gpu.util_fast,
                gpu.util_slow,
                f"{where} SM utilisation fell to {fmt(gpu.util_fast)}% from a busy "
                f"{fmt(gpu.util_slow)}%",
            ),
        }
        out: list[Finding] = []
        for kind, (bad, stat, severity, observed, expected, text) in checks.items():
            verdict = self.firing.step((sid, kind), bad)
            if verdict is None:
                continue
            score = float(squash(stat, 1.0))
            out.append(
                self.finding(
                    f"gpu.{kind}",
                    labels,
                    t,
                    score if verdict else min(score, 0.49),
                    verdict,
                    observed=observed if math.isfinite(observed) else None,
                    expected=expected,
                    severity=severity,
                    explanation=text if verdict else f"recovered: {text}",
                    scope={"host": labels["host"]},
                )
            )
        return out

    def _update_hosts(self, b: GpuColumns, ts: npt.NDArray[np.float64]) -> dict[str, float]:
        """Fold samples into per-host interval aggregates; score+learn each closed interval."""
        cfg = self.cfg
        with np.errstate(invalid="ignore", divide="ignore"):
            feats = np.column_stack(
                [
                    b.temp_c / 100.0,
                    b.power_w / b.power_limit_w,
                    b.sm_util_pct / 100.0,
                    b.mem_util_pct / 100.0,
                    b.mem_used_mib / b.mem_total_mib,
                ]
            )
        feats = np.clip(np.nan_to_num(feats, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
        hosts = labels_of((b.host,))[0]
        scores: dict[str, float] = {}
        for _, rows in groups(np.unique(hosts, return_inverse=True)[1].astype(np.int64)):
            key = str(hosts[rows[0]])
            h = self.hosts.get(key)
            t = ts[rows]
            if h is None:
                h = self.hosts[key] = _Host(cfg, cfg.seed + len(self.hosts))
                h.next_ts = float(t[0]) + cfg.hst_interval_s
            i = 0
            # Walk from one interval boundary to the next, summing the rows in between.
            while i < rows.size:
                due = np.flatnonzero(t[i:] >= h.next_ts)
                j = i + int(due[0]) if due.size else rows.size
                h.sums[:-1] += feats[rows[i:j]].sum(axis=0)
                h.sums[-1] += j - i
                if j < rows.size:
                    self._close_interval(h, float(t[j]))
                i = j
            scores[key] = h.score
        return scores

    def _close_interval(self, h: _Host, t: float) -> None:
        """Score then learn the host's mean features over the interval that just ended."""
        cfg = self.cfg
        if h.sums[-1] > 0:
            x = dict(zip(_HST_FEATURES, (h.sums[:-1] / h.sums[-1]).tolist(), strict=True))
            raw = float(h.model.score_one(x)) if h.learned >= cfg.hst_window else 0.0
            h.model.learn_one(x)
            h.learned += 1
            h.score = float(squash(raw, cfg.hst_threshold))
            h.sums[:] = 0.0
        h.next_ts = t + cfg.hst_interval_s

    def _host_findings(self, t: float) -> list[Finding]:
        out: list[Finding] = []
        for host, h in self.hosts.items():
            verdict = self.firing.step(("host", host), h.score >= 0.5)
            if verdict is not None:
                state = "unusual" if verdict else "back to usual"
                text = (
                    f"GPU telemetry of host {host} is {state} together "
                    f"(temperature, power, utilisation, memory; HalfSpaceTrees)"
                )
                out.append(
                    self.finding(
                        "gpu.host_anomaly", {"host": host}, t, h.score, verdict, explanation=text
                    )
                )
        return out

    def _evict(self, now: float) -> None:
        freed = self.registry.evict_idle(now)
        if freed.size:
            gone = set(freed.tolist())
            for sid in gone:
                self.gpus.pop(sid, None)
            self.firing.forget_series(gone)
            live = {g.host for g in self.gpus.values()}
            dead = {h for h in self.hosts if h not in live}
            for host in dead:
                del self.hosts[host]
            self.firing.forget(lambda k: isinstance(k, tuple) and k[0] == "host" and k[1] in dead)
