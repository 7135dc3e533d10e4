"""Inference requests for one window of simulated time, as columns, incidents applied."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .incidents import Resolved
from .latency import LatencyModel
from .load import Load
from .reference import Reference
from .spec import Fleet, IncidentKind

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

# Status codes used in the columns (names in STATUS).
OK, ERROR, TIMEOUT = 0, 1, 2
STATUS = ("ok", "error", "timeout")
FINISH = ("stop", "length", "tool_calls", "error", "abort")
STOP, LENGTH, TOOL_CALLS, FINISH_ERROR, ABORT = range(5)
ERRORS = (
    (500, "internal_error"),
    (502, "bad_gateway"),
    (503, "overloaded"),
    (429, "rate_limited"),
    (500, "cuda_error"),
)
CUDA_ERROR = 4
BASE_ERROR_RATE = 0.004
BASE_TIMEOUT_RATE = 0.001
BASE_LENGTH_RATE = 0.04
TOOL_CALL_RATE = 0.02
REFUSAL_RATE = 0.015
# A feedback_decline is a quality regression of one model version, and it shows in the
# requests as well as in the ratings: per unit of severity, this many more of the
# version's answers are refusals and this many more run into max_tokens (truncation).
# Modest on purpose (1.5% -> ~3.5-4.5% refusals, 4% -> ~6-7% truncations): a few
# dozen extra events a minute on a busy version, hard to see in any one signal.
DECLINE_REFUSAL = 0.02
DECLINE_LENGTH = 0.02
TIMEOUT_MS = 120_000.0
MAX_TOKENS = np.array([256, 512, 1024, 2048], dtype=np.int64)
ROLLOUT_SHARE = 0.5
N_TENANTS = 12
# Feedback ratings 1-5 stars mapped onto [-1, 1]; a healthy and a failing mix.
RATINGS = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
GOOD_MIX = np.array([0.05, 0.05, 0.10, 0.30, 0.50])
BAD_MIX = np.array([0.45, 0.25, 0.15, 0.10, 0.05])


@dataclass
class Requests:
    t: F64
    gateway: I64
    model: I64
    version: I64
    route: I64
    host: I64
    tenant: I64
    status: I64
    error: I64  # index into ERRORS, -1 when ok
    finish: I64
    prompt: I64
    completion: I64
    queue_ms: F64
    ttft_ms: F64
    tpot_ms: F64
    latency_ms: F64
    refusal: B
    embedding_norm: F64
    feedback: F64  # NaN where the user gave none
    feedback_delay_s: F64


def _match(r: Resolved, t: F64, cols: dict[str, I64]) -> B:
    mask = r.window(t)
    for name, code in (
        ("gateway", r.gateway),
        ("model", r.model),
        ("version", r.version),
        ("route", r.route),
        ("host", r.host),
    ):
        if code >= 0:
            mask &= cols[name] == code
    return mask


class Traffic:
    def __init__(
        self,
        fleet: Fleet,
        ref: Reference,
        load: Load,
        incidents: list[Resolved],
        feedback_fraction: float,
    ) -> None:
        self._fleet = fleet
        self._ref = ref
        self._load = load
        self._incidents = incidents
        self._latency = LatencyModel(ref, fleet.sizes)
        self._feedback_fraction = feedback_fraction
        self._gw_p = np.array(fleet.gateway_weight)
        self._model_p = np.array(fleet.model_weight)
        # Live versions: the first carries most traffic, later ones are canaries.
        self._live = [len(v) for v in fleet.versions]
        self._version_p = [
            np.array([1.0] + [0.25] * (k - 1)) / (1 + 0.25 * (k - 1)) for k in self._live
        ]
        width = max(len(h) for h in fleet.model_hosts)
        self._hosts = np.array([list(h) + [h[0]] * (width - len(h)) for h in fleet.model_hosts])
        self._n_hosts = np.array([len(h) for h in fleet.model_hosts])
        tw = 1.0 / np.arange(1, N_TENANTS + 1)
        self._tenant_p = tw / tw.sum()

    def arrivals(self, rng: np.random.Generator, t0: float, t1: float) -> F64:
        seconds = np.arange(np.floor(t0), np.ceil(t1), dtype=np.float64)
        counts = rng.poisson(self._load.intensity(seconds))
        t = np.repeat(seconds, counts) + rng.random(int(counts.sum()))
        t = t[(t >= t0) & (t < t1)]
        t.sort()
        return t

    def generate(self, rng: np.random.Generator, t0: float, t1: float) -> Requests:
        t = self.arrivals(rng, t0, t1)
        n = len(t)
        gateway = rng.choice(len(self._gw_p), size=n, p=self._gw_p)
        model = rng.choice(len(self._model_p), size=n, p=self._model_p)
        version = np.zeros(n, dtype=np.int64)
        u = rng.random(n)
        for m, p in enumerate(self._version_p):
            sel = model == m
            version[sel] = np.searchsorted(np.cumsum(p), u[sel] * 0.999999)
        host = self._hosts[model, rng.integers(0, 1 << 30, n) % self._n_hosts[model]]
        row = rng.integers(len(self._ref.route), size=n)
        prompt = self._ref.prompt_tokens[row].copy()
        completion = self._ref.completion_tokens[row].copy()
        route = self._ref.route[row].copy()
        tenant = rng.choice(N_TENANTS, size=n, p=self._tenant_p)
        cols = {
            "gateway": gateway,
            "model": model,
            "version": version,
            "route": route,
            "host": host,
        }

        keep = np.ones(n, dtype=bool)
        slow = np.ones(n)
        extra_queue = np.zeros(n)
        p_error = np.full(n, BASE_ERROR_RATE)
        p_length = np.full(n, BASE_LENGTH_RATE)
        p_refusal = np.full(n, REFUSAL_RATE)
        cuda = np.zeros(n, dtype=bool)
        norm_shift = np.zeros(n)
        bad_mix = np.zeros(n)
        draw = rng.random((4, n))
        for r in self._incidents:
            if r.kind is IncidentKind.LATENCY_REGRESSION:
                # The rollout takes a share of its model's traffic only while it is live.
                if r.version >= self._live[r.model]:
                    take = r.window(t) & (model == r.model) & (draw[0] < ROLLOUT_SHARE)
                    version[take] = r.version
                mask = _match(r, t, cols)
                slow[mask] *= 1.0 + r.severity
                continue
            mask = _match(r, t, cols)
            if not mask.any():
                continue
            if r.kind is IncidentKind.GATEWAY_SILENT:
                keep &= ~(mask & (draw[1] < min(1.0, r.severity)))
            elif r.kind is IncidentKind.TTFT_SPIKE:
                ramp = np.clip(r.progress(t[mask]) / 0.2, 0.0, 1.0)
                extra_queue[mask] += (
                    rng.exponential(1.0, int(mask.sum())) * 4000.0 * r.severity * ramp
                )
            elif r.kind is IncidentKind.ERROR_BURST:
                p_error[mask] += min(0.9, 0.3 * r.severity)
            elif r.kind is IncidentKind.GPU_THROTTLE:
                slow[mask] *= 1.0 + 0.55 * r.severity
            elif r.kind is IncidentKind.GPU_XID:
                p_error[mask] += min(0.95, 0.5 * r.severity)
                cuda |= mask
            elif r.kind is IncidentKind.PROMPT_DRIFT:
                prompt[mask] = np.minimum(prompt[mask] * (1.0 + 2.0 * r.severity), 32_768).astype(
                    np.int64
                )
                norm_shift[mask] += 0.25 * r.severity
            elif r.kind is IncidentKind.TRUNCATION_DRIFT:
                p_length[mask] += min(0.9, 0.3 * r.severity)
            elif r.kind is IncidentKind.FEEDBACK_DECLINE:
                bad_mix[mask] = np.minimum(1.0, 0.55 * r.severity)
                # Same draws as ever (only the probabilities move), so every other row
                # and incident is exactly what it was.
                p_refusal[mask] += DECLINE_REFUSAL * r.severity
                p_length[mask] += DECLINE_LENGTH * r.severity

        finish = np.where(
            draw[2] < p_length,
            LENGTH,
            np.where((route == 0) & (draw[2] > 1.0 - TOOL_CALL_RATE), TOOL_CALLS, STOP),
        )
        truncated = finish == LENGTH
        cap = MAX_TOKENS[rng.integers(len(MAX_TOKENS), size=n)]
        completion[truncated] = np.maximum(completion[truncated], cap[truncated])
        util = self._load.utilisation(t, host)
        lat = self._latency.sample(rng, model, prompt, completion, util, slow)
        queue = lat.queue_ms + extra_queue
        ttft = lat.ttft_ms + extra_queue
        latency = lat.latency_ms + extra_queue

        status = np.where(draw[3] < p_error, ERROR, OK)
        status[(status == OK) & ((draw[3] > 1.0 - BASE_TIMEOUT_RATE) | (latency > TIMEOUT_MS))] = (
            TIMEOUT
        )
        failed = status == ERROR
        error = np.where(failed, rng.integers(0, CUDA_ERROR, n), -1)
        error[failed & cuda] = CUDA_ERROR
        # A failed request returns quickly; a timed-out one at the gateway's deadline.
        latency = np.where(failed, queue + rng.uniform(5.0, 250.0, n), latency)
        latency = np.where(status == TIMEOUT, TIMEOUT_MS + rng.uniform(0.0, 50.0, n), latency)
        finish[failed] = FINISH_ERROR
        finish[status == TIMEOUT] = ABORT
        completion[status != OK] = 0

        refusal = rng.random(n) < p_refusal
        embedding_norm = np.abs(rng.normal(1.0, 0.04, n) + norm_shift)
        gives = (status == OK) & (rng.random(n) < self._feedback_fraction)
        stars = np.where(
            rng.random(n) < bad_mix,
            np.searchsorted(np.cumsum(BAD_MIX), rng.random(n) * 0.999999),
            np.searchsorted(np.cumsum(GOOD_MIX), rng.random(n) * 0.999999),
        )
        feedback = np.where(gives, RATINGS[stars], np.nan)
        delay = rng.exponential(20.0, n) + latency / 1000.0

        s = keep
        return Requests(
            t=t[s],
            gateway=gateway[s],
            model=model[s],
            version=version[s],
            route=route[s],
            host=host[s],
            tenant=tenant[s],
            status=status[s],
            error=error[s],
            finish=finish[s],
            prompt=prompt[s],
            completion=completion[s],
            queue_ms=queue[s],
            ttft_ms=ttft[s],
            tpot_ms=lat.tpot_ms[s],
            latency_ms=latency[s],
            refusal=refusal[s],
            embedding_norm=embedding_norm[s],
            feedback=feedback[s],
            feedback_delay_s=delay[s],
        )
