"""Decode throughput: the columnar fast path against the pydantic reference.

Prints one JSON object: events/s for ``decode_columns`` and for
``decode_models`` + ``InferenceColumns.from_rows``, and their ratio.

    .venv/bin/python -m benchmarks.decode_speed [--events N] [--batch B] [--repeat R]

``--baseline DIR`` (DIR holding another revision's ``schemas`` package, e.g. from
``git archive REV schemas | tar -x -C DIR``) instead compares ``decode_columns`` of this
tree with that one's, both loaded in this process and run in alternation, by CPU time:
on a shared machine two separate runs differ by more than a small change does.
"""

from __future__ import annotations

import argparse
import importlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from schemas.columns import InferenceColumns
from schemas.decode import decode_columns, decode_models
from schemas.models import InferenceEvent, dump_json

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def typical_events(count: int, seed: int = 7) -> list[bytes]:
    """Gateway-like inference events as a publisher would encode them."""
    rng = random.Random(seed)
    models = [("llama-3-70b", "2024-05"), ("mistral-7b", "v0.3"), ("qwen2-72b", "r1")]
    out: list[bytes] = []
    for i in range(count):
        model, version = rng.choice(models)
        latency = rng.lognormvariate(7.0, 0.5)
        ok = rng.random() > 0.02
        event = InferenceEvent(
            ts=NOW - timedelta(seconds=count - i, microseconds=rng.randrange(10**6)),
            gateway=f"gw-{rng.randrange(4)}",
            model=model,
            model_version=version,
            tenant=f"tenant-{rng.randrange(50)}",
            host=f"node-{rng.randrange(32)}",
            request_id=f"req-{i:012d}",
            status="ok" if ok else "error",
            http_status=200 if ok else 500,
            error_type=None if ok else "upstream_timeout",
            latency_ms=latency,
            ttft_ms=latency * rng.uniform(0.05, 0.3),
            tpot_ms=rng.uniform(10, 60),
            queue_ms=latency * rng.uniform(0.0, 0.05),
            prompt_tokens=rng.randrange(10, 4000),
            completion_tokens=rng.randrange(1, 1000),
            finish_reason="stop",
        )
        out.append(dump_json(event))
    return out


def _rate(fn: Callable[[], object], events: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return events / best


def compare(baseline: Path, batches: list[list[bytes]], rounds: int) -> dict[str, Any]:
    """decode_columns events/s (CPU time: best and median of ``rounds``) here and in
    ``baseline``, run in alternation so both see the same machine load."""
    links = Path(tempfile.mkdtemp(prefix="decode-baseline-"))
    (links / "schemas_baseline").symlink_to(baseline.resolve() / "schemas")
    sys.path.insert(0, str(links))
    impl = {
        "baseline": importlib.import_module("schemas_baseline.decode").decode_columns,
        "this_tree": decode_columns,
    }
    now = NOW.timestamp()
    times: dict[str, list[float]] = {name: [] for name in impl}
    for r in range(rounds):
        for name in sorted(impl, reverse=r % 2 == 1):  # alternate who goes first
            start = time.process_time()
            for batch in batches:
                impl[name](batch, kind="inference", now=now)
            times[name].append(time.process_time() - start)
    events = sum(map(len, batches))
    out: dict[str, Any] = {}
    for name, ts in times.items():
        out[f"{name}_best_events_per_s"] = round(events / min(ts))
        out[f"{name}_median_events_per_s"] = round(events / statistics.median(ts))
    for stat in ("best", "median"):
        ratio = out[f"this_tree_{stat}_events_per_s"] / out[f"baseline_{stat}_events_per_s"]
        out[f"change_{stat}"] = round(ratio - 1, 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="a directory holding a schemas package")
    args = parser.parse_args(argv)
    raws = typical_events(args.events)
    batches = [raws[i : i + args.batch] for i in range(0, len(raws), args.batch)]
    now = NOW.timestamp()
    if args.baseline is not None:
        result = {"benchmark": "decode_speed_ab", "events": len(raws), "batch": args.batch}
        result.update(compare(args.baseline, batches, max(2, args.repeat)))
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return 0

    def fast() -> None:
        for batch in batches:
            cols, bad = decode_columns(batch, kind="inference", now=now)
            assert not bad and len(cols) == len(batch)

    def reference() -> None:
        for batch in batches:
            models, bad = decode_models(batch, kind="inference", now=now)
            assert not bad
            InferenceColumns.from_rows(models)  # type: ignore[arg-type]

    fast_rate = _rate(fast, len(raws), args.repeat)
    ref_rate = _rate(reference, len(raws), max(1, args.repeat // 2))
    result = {
        "benchmark": "decode_speed",
        "kind": "inference",
        "events": len(raws),
        "batch": args.batch,
        "mean_bytes": round(sum(map(len, raws)) / len(raws), 1),
        "decode_columns_events_per_s": round(fast_rate),
        "pydantic_events_per_s": round(ref_rate),
        "speedup": round(fast_rate / ref_rate, 2),
    }
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
