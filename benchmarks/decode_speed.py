"""Decode throughput: the columnar fast path against the pydantic reference.

Prints one JSON object: events/s for ``decode_columns`` and for
``decode_models`` + ``InferenceColumns.from_rows``, and their ratio.

    .venv/bin/python -m benchmarks.decode_speed [--events N] [--batch B] [--repeat R]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    raws = typical_events(args.events)
    batches = [raws[i : i + args.batch] for i in range(0, len(raws), args.batch)]
    now = NOW.timestamp()

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
