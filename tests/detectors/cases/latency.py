"""latency: three (model, version, gateway) series on four hosts, 40 minutes, ~8 rows/s each
(a p99 needs a few hundred rows per window to count).

Two incidents after a 20-minute warm-up: end-to-end latency of llama-70b on gw-b
triples for 5 minutes, and host h3 (GPU throttling) doubles TTFT and TPOT for 5 minutes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tests.detectors.cases import inference_columns, split

T0 = 1.7e9


def stream(seed: int, n: int = 6000, duration_s: float = 2400.0) -> dict[str, Any]:
    """A clean stream as arrays (time ordered), for the case and the unit tests."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.sort(rng.uniform(0, duration_s, n))
    which = rng.integers(0, 3, n)
    model = np.array(["llama-70b", "llama-70b", "mistral-7b"], dtype=object)[which]
    gateway = np.array(["gw-a", "gw-b", "gw-a"], dtype=object)[which]
    host = np.array(["h1", "h2", "h3", "h4"], dtype=object)[rng.integers(0, 4, n)]
    base = np.array([900.0, 950.0, 300.0])[which]
    latency = base * rng.lognormal(0.0, 0.35, n)
    ttft = np.minimum(latency, 0.15 * base * rng.lognormal(0.0, 0.3, n))
    tpot = 0.02 * base * rng.lognormal(0.0, 0.2, n)
    return {
        "ts": ts,
        "model": model,
        "gateway": gateway,
        "host": host,
        "latency_ms": latency,
        "ttft_ms": ttft,
        "tpot_ms": tpot,
    }


def make_case(seed: int) -> tuple[list[Any], list[npt.NDArray[np.bool_]]]:
    s = stream(seed, n=60000)
    ts = s["ts"]
    slow = (s["model"] == "llama-70b") & (s["gateway"] == "gw-b")
    slow &= (ts >= T0 + 1300) & (ts < T0 + 1600)
    throttled = (s["host"] == "h3") & (ts >= T0 + 1900) & (ts < T0 + 2200)
    s["latency_ms"] = np.where(slow, 3.0 * s["latency_ms"], s["latency_ms"])
    for col in ("ttft_ms", "tpot_ms"):
        s[col] = np.where(throttled, 2.0 * s[col], s[col])
    s["latency_ms"] = np.where(throttled, s["latency_ms"] * 1.6, s["latency_ms"])
    cols = inference_columns(ts, **{k: v for k, v in s.items() if k != "ts"})
    return split(cols, slow | throttled, 200)
