"""The real traces the simulator resamples from, loaded once and reduced to arrays.

Three public data sets (see each LICENSE under the data folder):
Azure LLM inference traces 2023 (arrival times, prompt and completion token counts),
the Splitwise performance model (measured prefill and per-token times by batch and
prompt size) and the LLMPerf leaderboard (per-request TTFT and inter-token latency of
hosted 7b/13b/70b models). When the folder is missing, lognormal fits of the same data
stand in, so the simulator still runs from an installed wheel.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

SIZES = ("7b", "13b", "70b")
# Providers whose requests measure a serving stack, not a cold start or an error page.
_LLMPERF_SKIP = ("replicate", "lepton")
_BURST_BIN_S = 5.0


def default_data_dir() -> Path:
    # The checkout sits beside the shared data folder: <root>/main/stream/simulate -> <root>/shared
    return Path(__file__).resolve().parents[3] / "shared" / "data"


@dataclass(frozen=True)
class Reference:
    """Arrays the generators sample from; every array is read-only after load."""

    # Azure: one row per request, route 0 = conversation (chat), 1 = code (completions).
    prompt_tokens: I64
    completion_tokens: I64
    route: I64
    # Arrival-rate shape, mean 1, one value per _BURST_BIN_S seconds of the trace.
    burst: F64
    # Splitwise llama2-70b on H100, batch 1: prefill ms at these prompt sizes.
    prefill_sizes: F64
    prefill_ms: F64
    # Splitwise per-token ms by batch size, relative to batch 1.
    batch_sizes: F64
    batch_slowdown: F64
    # LLMPerf per size class: ttft seconds and inter-token seconds, paired per request.
    ttft_s: dict[str, F64]
    itl_s: dict[str, F64]
    from_files: bool


def _azure(folder: Path) -> tuple[I64, I64, I64, F64]:
    prompts: list[int] = []
    completions: list[int] = []
    routes: list[int] = []
    counts: list[F64] = []
    for route, name in enumerate(("conv", "code")):
        stamps: list[str] = []
        with (folder / f"AzureLLMInferenceTrace_{name}.csv").open(newline="") as fh:
            for row in csv.DictReader(fh):
                stamps.append(row["TIMESTAMP"].replace(" ", "T")[:26])
                prompts.append(int(row["ContextTokens"]))
                completions.append(int(row["GeneratedTokens"]))
                routes.append(route)
        ts = np.array(stamps, dtype="datetime64[us]")
        offsets = (ts - ts.min()).astype(np.float64) / 1e6
        counts.append(np.bincount((offsets // _BURST_BIN_S).astype(np.int64)).astype(np.float64))
    n = min(len(c) for c in counts)
    total = counts[0][:n] + counts[1][:n]
    return (
        np.array(prompts, dtype=np.int64),
        np.array(completions, dtype=np.int64),
        np.array(routes, dtype=np.int64),
        total / total.mean(),
    )


def _splitwise(path: Path) -> tuple[F64, F64, F64, F64]:
    prefill: dict[int, list[float]] = {}
    per_token: dict[int, list[float]] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["model"] != "llama2-70b" or row["hardware"] != "h100-80gb":
                continue
            batch = int(row["batch_size"])
            if batch == 1:
                prefill.setdefault(int(row["prompt_size"]), []).append(float(row["prompt_time"]))
            per_token.setdefault(batch, []).append(float(row["token_time"]))
    sizes = np.array(sorted(prefill), dtype=np.float64)
    ms = np.array([np.median(prefill[int(s)]) for s in sizes])
    batches = np.array(sorted(per_token), dtype=np.float64)
    tok = np.array([np.median(per_token[int(b)]) for b in batches])
    return sizes, ms, batches, tok / tok[0]


def _llmperf(folder: Path) -> tuple[dict[str, F64], dict[str, F64]]:
    ttft: dict[str, list[float]] = {s: [] for s in SIZES}
    itl: dict[str, list[float]] = {s: [] for s in SIZES}
    for path in sorted(folder.glob("*.json")):
        provider, size = path.stem.rsplit("_", 1)
        if provider in _LLMPERF_SKIP or size not in ttft:
            continue
        for req in json.loads(path.read_text()):
            t, i = req.get("ttft_s"), req.get("inter_token_latency_s")
            if req.get("error_code") is not None or not t or not i or i > 0.5:
                continue
            ttft[size].append(float(t))
            itl[size].append(float(i))
    return (
        {s: np.array(v, dtype=np.float64) for s, v in ttft.items()},
        {s: np.array(v, dtype=np.float64) for s, v in itl.items()},
    )


def _fallback() -> Reference:
    # Lognormal fits of the files above (medians and log-spreads measured on them).
    rng = np.random.default_rng(0)
    n = 20_000
    route = (rng.random(n) < 0.31).astype(np.int64)
    mu_p = np.where(route == 1, 7.0, 6.63)
    sd_p = np.where(route == 1, 1.36, 0.99)
    mu_c = np.where(route == 1, 2.79, 5.02)
    prompts = np.clip(np.exp(rng.normal(mu_p, sd_p)), 1, 8192).astype(np.int64)
    completions = np.clip(np.exp(rng.normal(mu_c, 0.85)), 1, 2000).astype(np.int64)
    burst = np.exp(rng.normal(0, 0.4, 700))
    ttft = {
        s: np.exp(rng.normal(np.log(m), 0.35, 2000))
        for s, m in zip(SIZES, (0.35, 0.4, 0.45), strict=True)
    }
    itl = {
        s: np.exp(rng.normal(np.log(m), 0.4, 2000))
        for s, m in zip(SIZES, (0.013, 0.016, 0.025), strict=True)
    }
    return Reference(
        prompt_tokens=prompts,
        completion_tokens=completions,
        route=route,
        burst=burst / burst.mean(),
        prefill_sizes=np.array([128, 256, 512, 1024, 2048, 4096, 8192], dtype=np.float64),
        prefill_ms=np.array([48.0, 55.0, 70.0, 120.0, 230.0, 520.0, 1300.0]),
        batch_sizes=np.array([1, 2, 4, 8, 16, 32, 64], dtype=np.float64),
        batch_slowdown=np.array([1.0, 1.0, 1.05, 1.07, 1.13, 1.27, 1.65]),
        ttft_s=ttft,
        itl_s=itl,
        from_files=False,
    )


@lru_cache(maxsize=4)
def load_reference(data_dir: Path | None = None) -> Reference:
    """Load (and cache) the reference arrays; fall back to fitted lognormals without files."""
    root = data_dir or default_data_dir()
    azure, split, perf = (
        root / "azure_llm_2023",
        root / "splitwise_perf_model" / "perf_model.csv",
        root / "llmperf_leaderboard" / "individual",
    )
    if not (azure.is_dir() and split.is_file() and perf.is_dir()):
        if data_dir is not None:
            raise FileNotFoundError(f"reference data not found under {data_dir}")
        return _fallback()
    prompts, completions, route, burst = _azure(azure)
    sizes, prefill, batches, slowdown = _splitwise(split)
    ttft, itl = _llmperf(perf)
    for arr in (prompts, completions, route, burst, sizes, prefill, batches, slowdown):
        arr.setflags(write=False)
    return Reference(
        prompt_tokens=prompts,
        completion_tokens=completions,
        route=route,
        burst=burst,
        prefill_sizes=sizes,
        prefill_ms=prefill,
        batch_sizes=batches,
        batch_slowdown=slowdown,
        ttft_s=ttft,
        itl_s=itl,
        from_files=True,
    )
