"""Request latency from measured data: prefill, decode, queueing.

TTFT = queueing + network/serving overhead + prefill. The overhead is an LLMPerf request's
TTFT minus the prefill of its 550-token prompt; prefill grows with the prompt as the
Splitwise measurements do. Time per output token is the same LLMPerf request's
inter-token latency, slowed by the Splitwise batch curve as host utilisation rises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .reference import Reference

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# Prefill cost relative to llama2-70b on H100 (parameter count over tensor parallelism).
PREFILL_FACTOR = {"7b": 0.18, "13b": 0.3, "70b": 1.0}
_LLMPERF_PROMPT = 550.0
_MIN_OVERHEAD_MS = 15.0
_MAX_BATCH = 64.0
_QUEUE_SCALE_MS = 15.0


@dataclass(frozen=True)
class Latency:
    queue_ms: F64
    ttft_ms: F64
    tpot_ms: F64
    latency_ms: F64


class LatencyModel:
    def __init__(self, ref: Reference, sizes: tuple[str, ...]) -> None:
        self._ref = ref
        self._sizes = sizes
        self._log_sizes = np.log(ref.prefill_sizes)
        self._log_prefill = np.log(ref.prefill_ms)
        self._typical_batch = self._slowdown(np.array([0.55]))[0]

    def prefill_ms(self, prompt: I64) -> F64:
        """Splitwise prefill ms (70b, H100) by prompt size, log-log interpolated."""
        x = np.log(np.maximum(prompt, 1).astype(np.float64))
        slope = (self._log_prefill[-1] - self._log_prefill[-2]) / (
            self._log_sizes[-1] - self._log_sizes[-2]
        )
        inside = np.interp(x, self._log_sizes, self._log_prefill)
        beyond = self._log_prefill[-1] + slope * (x - self._log_sizes[-1])
        return np.exp(np.where(x > self._log_sizes[-1], beyond, inside))

    def _slowdown(self, util: F64) -> F64:
        batch = 1.0 + util * (_MAX_BATCH - 1.0)
        return np.interp(batch, self._ref.batch_sizes, self._ref.batch_slowdown)

    def sample(
        self,
        rng: np.random.Generator,
        model: I64,
        prompt: I64,
        completion: I64,
        util: F64,
        slow: F64,
    ) -> Latency:
        """``slow`` multiplies compute time (prefill and decode): rollouts, throttling."""
        n = len(model)
        overhead = np.empty(n)
        itl = np.empty(n)
        factor = np.empty(n)
        base_prefill = float(self.prefill_ms(np.array([int(_LLMPERF_PROMPT)]))[0])
        for m, size in enumerate(self._sizes):
            sel = model == m
            k = int(sel.sum())
            if not k:
                continue
            pool_t, pool_i = self._ref.ttft_s[size], self._ref.itl_s[size]
            j = rng.integers(len(pool_t), size=k)
            factor[sel] = PREFILL_FACTOR[size]
            overhead[sel] = np.maximum(
                pool_t[j] * 1000.0 - base_prefill * PREFILL_FACTOR[size], _MIN_OVERHEAD_MS
            )
            itl[sel] = pool_i[j] * 1000.0
        prefill = self.prefill_ms(prompt) * factor * slow
        tpot = itl * self._slowdown(util) / self._typical_batch * slow
        queue = rng.exponential(1.0, n) * _QUEUE_SCALE_MS * util / (1.0 - util)
        ttft = queue + overhead + prefill
        decode = tpot * np.maximum(completion - 1, 0)
        return Latency(queue_ms=queue, ttft_ms=ttft, tpot_ms=tpot, latency_ms=ttft + decode)
