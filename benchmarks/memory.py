"""Memory per active series: RSS growth of one Engine (default detectors) per series.

For each size (default 10k, 100k, 1M series) a fresh subprocess builds one
Engine with the default config, warms it up on a few series (imports, numba,
first arrays), then feeds ``--events-per-series`` inference events to each of N
new series (distinct gateway/model/version/host labels) in batches, and reports
RSS growth / N, the marginal cost per series between consecutive sizes (fixed
costs cancelled), and each detector's own ``bytes_per_series`` (the latency
detector's is the target). A size whose projected RSS exceeds half the memory
available is extrapolated, not run. Then the same for scraped metric series, which
only the ``series`` detector sees: ``--metric-series`` new series (default 20,000) of
``METRIC_ROWS`` rows each, once at 15-second and once at 5-minute sampling (a 5-minute
series holds a ring of its last values for the nearest-value statistic; a 15-second one
does not). Prints one JSON object and a table.

    .venv/bin/python -m benchmarks.memory [--sizes 10000,100000,1000000] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
import orjson

from schemas.columns import STATUS_CODES, InferenceColumns, MetricColumns, series_key

TARGET_LATENCY_BYTES = 1024
TARGET_1M_RSS = 1.5 * 2**30
BATCH = 50_000


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (8 GiB where there is none)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def series_batch(first: int, count: int, t0: float, repeat: int) -> InferenceColumns:
    """``repeat`` events for each of series ``first .. first+count`` (one row per event)."""
    sid = np.tile(np.arange(first, first + count), repeat)
    n = len(sid)

    def labels(fmt: str, mod: int | None = None) -> np.ndarray:
        vals = sid if mod is None else sid % mod
        arr = np.empty(n, dtype=object)
        arr[:] = [fmt.format(v) for v in vals.tolist()]
        return arr

    rng = np.random.default_rng(first)
    nan = np.full(n, np.nan)
    return InferenceColumns(
        ts=t0 + np.repeat(np.arange(repeat, dtype=np.float64), count),
        gateway=labels("gw-{}", 8),
        model=labels("model-{}", 997),
        model_version=labels("v{}"),
        route=labels("/v1/chat/completions", 1),
        tenant=labels("tenant-{}", 50),
        host=labels("host-{}"),
        status=np.full(n, STATUS_CODES["ok"], dtype=np.int64),
        http_status=np.full(n, 200, dtype=np.int64),
        error_type=labels("", 1),
        latency_ms=rng.lognormal(6.0, 0.3, n),
        ttft_ms=rng.lognormal(4.0, 0.3, n),
        tpot_ms=rng.uniform(10, 40, n),
        queue_ms=rng.uniform(0, 5, n),
        prompt_tokens=rng.integers(10, 2000, n).astype(np.float64),
        completion_tokens=rng.integers(1, 500, n).astype(np.float64),
        finish_reason=np.zeros(n, dtype=np.int64),
        feedback_score=nan,
        refusal=nan.copy(),
        toxicity=nan.copy(),
        embedding_norm=rng.uniform(0.9, 1.1, n),
    )


METRIC_ROWS = 40
METRIC_INTERVALS = (15.0, 300.0)


def metric_batch(first: int, count: int, t: float) -> MetricColumns:
    """One row for each of metric series ``first .. first+count``, at time ``t``."""
    names = np.empty(count, dtype=object)
    names[:] = [f"bench_metric_{i}" for i in range(first, first + count)]
    keys = np.empty(count, dtype=object)
    keys[:] = [series_key(m, {"job": "bench"}) for m in names.tolist()]
    labels = np.empty(count, dtype=object)
    labels[:] = [{"job": "bench"}] * count
    value = np.random.default_rng(first + int(t)).normal(50.0, 3.0, count)
    return MetricColumns(ts=np.full(count, t), name=names, series=keys, labels=labels, value=value)


def measure_metric(series: int, interval_s: float) -> dict[str, Any]:
    """RSS growth per new metric series fed ``METRIC_ROWS`` rows through one Engine."""
    from stream.engine import Engine

    eng = Engine()
    t0 = 1_717_401_600.0
    for j in range(3):  # warm-up on other series (imports, numba), not counted
        eng.process(metric_batch(10**9, 100, t0 + interval_s * j))
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    for j in range(METRIC_ROWS):
        for first in range(0, series, BATCH):
            eng.process(metric_batch(first, min(BATCH, series - first), t0 + interval_s * j))
    elapsed = time.perf_counter() - started
    gc.collect()
    grown = rss_bytes() - before
    det = next(d for d in eng.detectors if d.name == "series")
    return {
        "interval_s": interval_s,
        "series": series,
        "rows_per_series": METRIC_ROWS,
        "rss_bytes_per_series": round(grown / series, 1),
        "series_detector_bytes_per_series": round(float(det.bytes_per_series), 1),
        "feed_s": round(elapsed, 1),
    }


def _subprocess(args: list[str], limit_s: float) -> dict[str, Any]:
    """One measurement in a fresh process (its RSS is its own); an error as a row."""
    cmd = [sys.executable, "-m", "benchmarks.memory", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit_s, check=True)
        out: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
        return out
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {limit_s} s"}
    except subprocess.CalledProcessError as exc:
        return {"error": exc.stderr[-2000:]}


def measure_one(series: int, per_series: int) -> dict[str, Any]:
    from stream.engine import Engine
    from stream.worker.engines import EnginePool

    eng = Engine()
    t0 = 1_717_401_600.0
    eng.process(series_batch(10**9, 1000, t0, per_series))  # warm-up, not counted
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    for first in range(0, series, BATCH):
        eng.process(series_batch(first, min(BATCH, series - first), t0 + 10, per_series))
    elapsed = time.perf_counter() - started
    gc.collect()
    grown = rss_bytes() - before
    pool = EnginePool(eng.config)
    pool.engines[0] = eng
    return {
        "series": series,
        "events_per_series": per_series,
        "rss_after_bytes": rss_bytes(),
        "rss_growth_bytes": grown,
        "rss_bytes_per_series": round(grown / series, 1),
        "detector_bytes_per_series": {
            d.name: round(float(d.bytes_per_series), 1) for d in eng.detectors
        },
        "registered_series": pool.series_by_detector(),
        "feed_s": round(elapsed, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--events-per-series", type=int, default=2)
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--metric-series", type=int, default=20_000)
    ap.add_argument("--metric-one", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--limit-s", type=float, default=300.0, help="per size")
    ap.add_argument(
        "--max-rss-gib",
        type=float,
        default=None,
        help="skip (and extrapolate) a size whose projected RSS exceeds this "
        "(default: half the memory available now)",
    )
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = ap.parse_args(argv)
    if args.one is not None:
        sys.stdout.write(orjson.dumps(measure_one(args.one, args.events_per_series)).decode())
        return 0
    if args.metric_one is not None:
        got = measure_metric(args.metric_series, args.metric_one)
        sys.stdout.write(orjson.dumps(got).decode())
        return 0
    sizes = [2000, 10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    if args.max_rss_gib is None:
        args.max_rss_gib = available_bytes() / 2 / 2**30
    rows: list[dict[str, Any]] = []
    for n in sizes:
        last = next((r for r in reversed(rows) if "error" not in r), None)
        if last is not None:
            projected = last["rss_after_bytes"] + last["rss_bytes_per_series"] * (
                n - last["series"]
            )
            if projected > args.max_rss_gib * 2**30:
                rows.append(
                    {
                        "series": n,
                        "extrapolated": True,
                        "rss_after_bytes": round(projected),
                        "rss_bytes_per_series": last["rss_bytes_per_series"],
                        "note": f"not run: projected RSS over {args.max_rss_gib} GiB "
                        f"(linear from {last['series']} series)",
                    }
                )
                continue
        one = ["--one", str(n), "--events-per-series", str(args.events_per_series)]
        rows.append({"series": n, **_subprocess(one, args.limit_s)})
    metric_n = 2000 if args.quick else args.metric_series
    metric = [
        {
            "interval_s": every,
            **_subprocess(
                ["--metric-one", str(every), "--metric-series", str(metric_n)], args.limit_s
            ),
        }
        for every in METRIC_INTERVALS
    ]
    ok = [r for r in rows if "error" not in r and not r.get("extrapolated")]
    # Per-series cost between consecutive measured sizes: the fixed costs (per model and
    # gateway, not per series) cancel, so this is the figure that must stay flat.
    for a, b in itertools.pairwise(ok):
        b["marginal_bytes_per_series"] = round(
            (b["rss_growth_bytes"] - a["rss_growth_bytes"]) / (b["series"] - a["series"]), 1
        )
    biggest = max(ok, key=lambda r: r["series"]) if ok else None
    lat = biggest["detector_bytes_per_series"].get("latency") if biggest else None
    at_1m = next((r for r in rows if r["series"] == 1_000_000 and "error" not in r), None)
    rss_1m = at_1m["rss_after_bytes"] if at_1m else None
    out = {
        "benchmark": "memory",
        "sizes": rows,
        "metric_series": metric,
        "latency_detector_bytes_per_series": lat,
        "target_latency_bytes_per_series": TARGET_LATENCY_BYTES,
        "rss_1m_series_bytes": rss_1m,
        "rss_1m_extrapolated": bool(at_1m and at_1m.get("extrapolated")),
        "target_rss_1m_bytes": TARGET_1M_RSS,
        "meets": {
            "latency_bytes": lat is not None and lat <= TARGET_LATENCY_BYTES,
            "rss_1m": None if rss_1m is None else rss_1m <= TARGET_1M_RSS,
        },
        "quick": args.quick,
    }
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    for r in rows:
        if "error" in r:
            sys.stdout.write(f"{r['series']:>9,} series  error: {r['error'][:200]}\n")
        elif r.get("extrapolated"):
            sys.stdout.write(
                f"{r['series']:>9,} series  ~{r['rss_after_bytes'] / 2**30:.1f} GiB RSS "
                f"(extrapolated, {r['note']})\n"
            )
        else:
            sys.stdout.write(
                f"{r['series']:>9,} series  {r['rss_bytes_per_series']:>9,.0f} B/series RSS  "
                f"latency state {r['detector_bytes_per_series'].get('latency')} B/series  "
                + (
                    f"marginal {r['marginal_bytes_per_series']:,.0f} B/series  "
                    if "marginal_bytes_per_series" in r
                    else ""
                )
                + f"({r['feed_s']} s)\n"
            )
    for r in metric:
        if "error" in r:
            sys.stdout.write(
                f"metric series every {r['interval_s']:g} s  error: {r['error'][:200]}\n"
            )
            continue
        sys.stdout.write(
            f"{r['series']:>9,} metric series every {r['interval_s']:g} s  "
            f"{r['rss_bytes_per_series']:>9,.0f} B/series RSS  series detector state "
            f"{r['series_detector_bytes_per_series']:,.0f} B/series ({r['feed_s']} s)\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
