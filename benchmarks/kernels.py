"""Kernel throughput: events/s on one core per kernel family, numba vs plain Python.

Run ``python -m benchmarks.kernels``; prints one JSON object. Each family is timed at
batch sizes 1, 64, 1k and 64k (numba, after a warm-up compile) against a plain-Python
loop doing the same maths (measured on up to 20k events), plus the default latency
detector's learned bytes per series.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from detectors import kernels as k
from detectors.latency import LatencyDetector

SERIES = 256
SIZES = (1, 64, 1024, 65536)


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, SERIES, n).astype(np.int64),
        np.sort(rng.uniform(0, 3600, n)),
        rng.lognormal(6.0, 0.4, n),
    )


def _families() -> dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], Any]]:
    def ewma(ids: np.ndarray, ts: np.ndarray, x: np.ndarray) -> Any:
        return k.ewma_update(ids, ts, np.log(x), *_EWMA, 3600.0, 10.0, 1e-4, -np.inf, 4.0, 1800.0)

    def sketch(ids: np.ndarray, ts: np.ndarray, x: np.ndarray) -> Any:
        return k.sketch_add(ids, ts, x, *_SKETCH, 1.03 / 0.97, 1e-3, 60.0, 0.99)

    def cusum(ids: np.ndarray, ts: np.ndarray, x: np.ndarray) -> Any:
        return k.cusum_update(ids, x, np.zeros(SERIES), np.zeros(SERIES), 0.5, np.inf)

    def seasonal(ids: np.ndarray, ts: np.ndarray, x: np.ndarray) -> Any:
        return k.seasonal_update(ids, ts, x, *_SEASON, 0.1, 0.05, 5.0, 1.0, -np.inf, np.inf)

    def binomial(ids: np.ndarray, ts: np.ndarray, x: np.ndarray) -> Any:
        n, kk = k.decayed_counts_update(
            ids, ts, (x > 800).astype(np.float64), *_BINOM, 120.0, np.zeros(SERIES, dtype=np.bool_)
        )
        return k.wilson_lower(kk, n, 3.0)

    def heartbeat(ids: np.ndarray, ts: np.ndarray, x: np.ndarray) -> Any:
        return k.heartbeat_update(ids, ts, *_HB, 0.01, 30.0, 15.0)

    return {
        "ewma_latency_baseline": ewma,
        "quantile_sketch": sketch,
        "cusum": cusum,
        "seasonal": seasonal,
        "binomial_rate": binomial,
        "heartbeat": heartbeat,
    }


# Per-series state for each kernel, as a tuple so that each kernel sees its arguments typed.
_EWMA = (
    np.zeros(SERIES),
    np.zeros(SERIES),
    np.zeros(SERIES),
    np.full(SERIES, -np.inf),
    np.full(SERIES, np.nan),
)
_SKETCH = (
    np.zeros((SERIES, 64), np.float32),
    np.zeros(SERIES, np.int64),
    np.zeros(SERIES),
    np.zeros(SERIES),
)
_SEASON = (
    np.zeros((SERIES, 168)),
    np.zeros((SERIES, 168)),
    np.zeros((SERIES, 168)),
    np.zeros(SERIES),
    np.zeros(SERIES),
    np.zeros(SERIES),
)
_BINOM = (np.zeros(SERIES), np.zeros(SERIES), np.full(SERIES, -np.inf))
_HB = (np.full(SERIES, -np.inf), np.zeros(SERIES), np.zeros(SERIES))


def _python_families() -> dict[str, Callable[[list[int], list[float], list[float]], None]]:
    """The same maths as plain Python loops over dicts (the 'no numba' baseline)."""

    def ewma(ids: list[int], ts: list[float], x: list[float]) -> None:
        s: dict[int, list[float]] = {}
        for sid, t, v in zip(ids, ts, x, strict=True):
            mean, var, w, last = s.get(sid, [0.0, 0.0, 0.0, -math.inf])
            lv = math.log(v)
            wd = w * (2 ** (-(t - last) / 3600.0) if t > last else 1.0)
            _z = (lv - mean) / math.sqrt(max(var, 1e-4)) if wd >= 10 else 0.0
            a = 1 / (wd + 1)
            d = lv - mean
            s[sid] = [mean + a * d, (1 - a) * (var + a * d * d), wd + 1, max(t, last)]

    def sketch(ids: list[int], ts: list[float], x: list[float]) -> None:
        s: dict[int, dict[int, float]] = {}
        lg = math.log(1.03 / 0.97)
        for sid, t, v in zip(ids, ts, x, strict=True):
            b = s.setdefault(sid, {})
            i = math.ceil(math.log(v) / lg)
            b[i] = b.get(i, 0.0) + 2 ** (t / 60.0 % 40)
            tot, need, acc = sum(b.values()), 0.01, 0.0
            for key in sorted(b, reverse=True):
                acc += b[key]
                if acc >= need * tot:
                    break

    def cusum(ids: list[int], ts: list[float], x: list[float]) -> None:
        s: dict[int, list[float]] = {}
        for sid, v in zip(ids, x, strict=True):
            hi, lo = s.get(sid, [0.0, 0.0])
            s[sid] = [max(0.0, hi + v - 0.5), max(0.0, lo - v - 0.5)]

    def seasonal(ids: list[int], ts: list[float], x: list[float]) -> None:
        s: dict[tuple[int, int], list[float]] = {}
        for sid, t, v in zip(ids, ts, x, strict=True):
            days = math.floor(t / 86400)
            h = ((days + 3) % 7) * 24 + int((t - days * 86400) // 3600)
            mean, var, w = s.get((sid, h), [0.0, 0.0, 0.0])
            _z = (v - mean) / math.sqrt(max(var, 1.0)) if w >= 5 else 0.0
            wd = w * 0.9
            a = 1 / (wd + 1)
            d = v - mean
            s[(sid, h)] = [mean + a * d, (1 - a) * (var + a * d * d), wd + 1]

    def binomial(ids: list[int], ts: list[float], x: list[float]) -> None:
        s: dict[int, list[float]] = {}
        for sid, t, v in zip(ids, ts, x, strict=True):
            n, kk, last = s.get(sid, [0.0, 0.0, -math.inf])
            d = 2 ** (-(t - last) / 120.0) if t > last else 1.0
            n, kk = n * d + 1, kk * d + (v > 800)
            p, z2 = kk / n, 9.0
            _lo = (p + z2 / (2 * n) - 3 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))) / (
                1 + z2 / n
            )
            s[sid] = [n, kk, max(t, last)]

    def heartbeat(ids: list[int], ts: list[float], x: list[float]) -> None:
        s: dict[int, list[float]] = {}
        for sid, t in zip(ids, ts, strict=True):
            last, m, w = s.get(sid, [t, 0.0, 0.0])
            g = t - last
            _r = g / m if w >= 30 and m > 0 else 0.0
            w = w * 0.99 + 1
            s[sid] = [t, m + (g - m) / w, w]

    return {
        "ewma_latency_baseline": ewma,
        "quantile_sketch": sketch,
        "cusum": cusum,
        "seasonal": seasonal,
        "binomial_rate": binomial,
        "heartbeat": heartbeat,
    }


def _rate(fn: Callable[[], Any], events: int, min_s: float = 0.3) -> float:
    reps, elapsed = 0, 0.0
    start = time.perf_counter()
    while elapsed < min_s:
        fn()
        reps += 1
        elapsed = time.perf_counter() - start
    return events * reps / elapsed


def main() -> None:
    out: dict[str, Any] = {"series": SERIES, "batch_sizes": list(SIZES), "kernels": {}}
    py = _python_families()
    for name, fn in _families().items():
        fn(*_data(64))  # compile (or load the cache) before timing
        row: dict[str, float] = {}
        for size in SIZES:
            ids, ts, x = _data(size)
            row[f"numba_batch_{size}"] = round(_rate(partial(fn, ids, ts, x), size))
        ids, ts, x = _data(20_000)
        pi, pt, px = ids.tolist(), ts.tolist(), x.tolist()
        row["python"] = round(_rate(partial(py[name], pi, pt, px), len(pi)))
        row["speedup_batch_65536"] = round(row["numba_batch_65536"] / row["python"], 1)
        out["kernels"][name] = row
    det = LatencyDetector()
    out["latency_detector_bytes_per_series"] = det.bytes_per_series
    out["target_ewma_events_per_s_at_64k"] = 20_000_000
    out["target_met"] = out["kernels"]["ewma_latency_baseline"]["numba_batch_65536"] >= 2e7
    print(json.dumps(out))


if __name__ == "__main__":
    main()
