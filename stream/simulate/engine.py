"""The simulation loop: windows of time in, time-ordered chunks of wire dicts out.

Everything is drawn per window from a generator seeded by (seed, window index), so the
output depends only on the spec and the incidents. Dicts are built from numpy columns
in one comprehension per kind; no pydantic model is made per event.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.models import SCHEMA_VERSION

from .gpu import MEM_TOTAL_MIB, POWER_LIMIT_W, GpuRows, Telemetry
from .incidents import ROUTES, resolve
from .load import Load
from .reference import load_reference
from .spec import Fleet, FleetSpec, Incident
from .traffic import ERRORS, FINISH, OK, STATUS, Requests, Traffic

Event = dict[str, Any]
F64 = npt.NDArray[np.float64]
Obj = npt.NDArray[np.object_]

WINDOW_S = 10.0
_TENANTS = tuple(f"tenant-{i + 1:02d}" for i in range(12))


def _stamps(start_us: int, t: F64) -> list[str]:
    us = (np.floor(t * 1e6).astype(np.int64) + start_us).astype("datetime64[us]")
    out: list[str] = np.datetime_as_string(us, unit="ms", timezone="UTC").tolist()
    return out


def _objects(values: Sequence[str]) -> Obj:
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


def _r3(x: F64) -> list[float]:
    out: list[float] = np.round(x, 3).tolist()
    return out


class Simulation:
    def __init__(self, spec: FleetSpec, incidents: list[Incident]) -> None:
        self.spec = spec
        self.fleet = Fleet.from_spec(spec)
        ref = load_reference(spec.data_dir)
        resolved, self.versions = resolve(self.fleet, incidents)
        load = Load(spec, ref)
        self.traffic = Traffic(self.fleet, ref, load, resolved, spec.feedback_fraction)
        self.telemetry = Telemetry(self.fleet, load, resolved, spec.gpu_interval_s, spec.seed)
        self._start_us = round(spec.start.timestamp() * 1e6)
        self._seq = 0
        self._pending_t: F64 = np.empty(0)
        self._pending: list[Event] = []
        self._lookup = self._names()

    def _names(self) -> dict[str, Obj]:
        f = self.fleet
        width = max(len(v) for v in self.versions)
        table = [[vs[min(i, len(vs) - 1)] for i in range(width)] for vs in self.versions]
        return {
            "gateway": _objects(f.gateways),
            "model": _objects(f.models),
            "version": _objects([v for row in table for v in row]),
            "route": _objects(ROUTES),
            "host": _objects(f.hosts),
            "tenant": _objects(_TENANTS),
            "status": _objects(STATUS),
            "finish": _objects(FINISH),
        }

    def _inference(self, r: Requests) -> list[Event]:
        names = self._lookup
        n = len(r.t)
        prefix = f"{self.spec.seed:x}-"
        ids = [f"{prefix}{i:010d}" for i in range(self._seq, self._seq + n)]
        self._seq += n
        width = len(names["version"]) // len(self.versions)
        version = r.model * width + r.version
        ok = (r.status == OK).tolist()
        out: list[Event] = [
            {
                "kind": "inference",
                "schema_version": SCHEMA_VERSION,
                "ts": ts,
                "gateway": gw,
                "model": m,
                "model_version": v,
                "route": route,
                "tenant": tenant,
                "host": host,
                "request_id": rid,
                "status": st,
                "latency_ms": lat,
                "prompt_tokens": p,
                "completion_tokens": c,
                "finish_reason": fin,
            }
            for ts, gw, m, v, route, host, tenant, rid, st, fin, p, c, lat in zip(
                _stamps(self._start_us, r.t),
                names["gateway"][r.gateway].tolist(),
                names["model"][r.model].tolist(),
                names["version"][version].tolist(),
                names["route"][r.route].tolist(),
                names["host"][r.host].tolist(),
                names["tenant"][r.tenant].tolist(),
                ids,
                names["status"][r.status].tolist(),
                names["finish"][r.finish].tolist(),
                r.prompt.tolist(),
                r.completion.tolist(),
                _r3(r.latency_ms),
                strict=True,
            )
        ]
        extra = zip(
            out,
            ok,
            r.error.tolist(),
            _r3(r.queue_ms),
            _r3(r.ttft_ms),
            _r3(r.tpot_ms),
            r.refusal.tolist(),
            _r3(r.embedding_norm),
            strict=True,
        )
        for d, good, err, q, tt, tp, ref, en in extra:
            if good:
                d["http_status"] = 200
                d["ttft_ms"] = tt
                d["tpot_ms"] = tp
                d["queue_ms"] = q
                d["refusal"] = ref
                d["embedding_norm"] = en
            elif err >= 0:
                d["http_status"], d["error_type"] = ERRORS[err]
            else:
                d["http_status"], d["error_type"] = 504, "timeout"
        for i in np.flatnonzero(~np.isnan(r.feedback)).tolist():
            out[i]["feedback_score"] = float(r.feedback[i])
        return out

    def _feedback(self, r: Requests, events: list[Event]) -> tuple[F64, list[Event]]:
        idx = np.flatnonzero(~np.isnan(r.feedback))
        t = r.t[idx] + r.feedback_delay_s[idx]
        stamps = _stamps(self._start_us, t)
        out = [
            {
                "kind": "feedback",
                "schema_version": SCHEMA_VERSION,
                "ts": ts,
                "request_id": events[i]["request_id"],
                "model": events[i]["model"],
                "model_version": events[i]["model_version"],
                "score": events[i]["feedback_score"],
                "label": "rating",
            }
            for ts, i in zip(stamps, idx.tolist(), strict=True)
        ]
        return t, out

    def _gpu(self, g: GpuRows) -> list[Event]:
        f = self.fleet
        rows = zip(
            _stamps(self._start_us, g.t),
            g.host.tolist(),
            g.gpu.tolist(),
            np.round(g.sm, 1).tolist(),
            np.round(g.mem_util, 1).tolist(),
            np.round(g.mem_used, 0).tolist(),
            np.round(g.temp, 1).tolist(),
            np.round(g.power, 1).tolist(),
            np.round(g.clock, 0).tolist(),
            g.reasons.tolist(),
            g.xid.tolist(),
            g.ecc_sbe.tolist(),
            g.ecc_dbe.tolist(),
            g.pcie.tolist(),
            strict=True,
        )
        out: list[Event] = []
        for ts, h, i, sm, mu, used, temp, pw, clk, rs, xid, sbe, dbe, pcie in rows:
            d: Event = {
                "kind": "gpu",
                "schema_version": SCHEMA_VERSION,
                "ts": ts,
                "host": f.hosts[h],
                "gpu_index": i,
                "gpu_uuid": f.gpu_uuids[h][i],
                "sm_util_pct": sm,
                "mem_util_pct": mu,
                "mem_used_mib": used,
                "mem_total_mib": MEM_TOTAL_MIB,
                "temp_c": temp,
                "power_w": pw,
                "power_limit_w": POWER_LIMIT_W,
                "sm_clock_mhz": clk,
                "clocks_event_reasons": rs,
                "ecc_sbe_total": sbe,
                "ecc_dbe_total": dbe,
                "pcie_replay_total": pcie,
            }
            if xid >= 0:
                d["xid"] = xid
            out.append(d)
        return out

    def window(self, index: int) -> list[Event]:
        t0 = index * WINDOW_S
        t1 = min(self.spec.duration_s, t0 + WINDOW_S)
        rng = np.random.default_rng([self.spec.seed, index])
        req = self.traffic.generate(rng, t0, t1)
        inference = self._inference(req)
        fb_t, fb = self._feedback(req, inference)
        rows = self.telemetry.generate(rng, t0, t1)
        gpu = self._gpu(rows)
        # Feedback arrives later than its request: hold it until its window comes.
        pend_t = np.concatenate([self._pending_t, fb_t])
        pend = self._pending + fb
        order = np.argsort(pend_t, kind="stable")
        due = order[pend_t[order] < t1]
        later = order[pend_t[order] >= t1]
        self._pending_t = pend_t[later]
        self._pending = [pend[i] for i in later.tolist()]
        events = inference + gpu + [pend[i] for i in due.tolist()]
        times = np.concatenate([req.t, rows.t, pend_t[due]])
        return [events[i] for i in np.argsort(times, kind="stable").tolist()]


def simulate(spec: FleetSpec, incidents: list[Incident]) -> Iterator[list[Event]]:
    """Yield time-ordered chunks (one per WINDOW_S of simulated time) of wire-format dicts."""
    sim = Simulation(spec, incidents)
    n = int(np.ceil(spec.duration_s / WINDOW_S))
    for i in range(n):
        chunk = sim.window(i)
        if chunk:
            yield chunk
