"""Replay throughput on one core: JSONL inference events and a CSV metric series.

Prints one JSON object: for JSONL, read+decode rows/s (no detectors) and full
replay (decode + every default detector + lifecycle) inference events/s; for CSV,
full replay rows/s. Numba compilation is warmed up first and not timed.

    .venv/bin/python -m benchmarks.replay_speed [--events N] [--csv-rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from stream.replay.readers import BadRow, open_source
from stream.replay.runner import Replayer
from stream.simulate import FleetSpec, write

TARGET_INFERENCE_PER_S = 300_000


def _pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _jsonl(work: Path, events: int) -> Path:
    rate = 2000.0
    spec = FleetSpec(
        seed=31,
        duration_s=events / rate,
        rate=rate,
        hosts=3,
        gpus_per_host=2,
        feedback_fraction=0.0,
    )
    files = write(spec, [], work / "jsonl", split_by_kind=True)
    return files.by_kind["inference"]


def _csv(work: Path, rows: int) -> Path:
    p = work / "series.csv"
    t0 = 1717401600
    with p.open("w") as fh:
        fh.write("timestamp,value\n")
        for i in range(rows):
            fh.write(f"{t0 + i},{50.0 + (i * 7919 % 97) / 10.0}\n")
    return p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--csv-rows", type=int, default=300_000)
    args = ap.parse_args(argv)
    _pin_one_core()
    with tempfile.TemporaryDirectory(prefix="llmwatch-speed-") as tmp:
        work = Path(tmp)
        events = _jsonl(work, args.events)
        csv_path = _csv(work, args.csv_rows)
        Replayer().run([open_source(events)])  # warm-up: numba, imports, caches
        t = time.perf_counter()
        bad: list[BadRow] = []
        n = sum(
            len(p.columns) for chunk, _ in open_source(events).chunks(bad) for p in chunk.values()
        )
        decode_s = time.perf_counter() - t
        jsonl = Replayer().run([open_source(events)])
        csv_result = Replayer().run([open_source(csv_path)])
    inf = jsonl.rows.get("inference", 0)
    out = {
        "jsonl": {
            "inference_events": inf,
            "decode_only_rows_per_s": round(n / decode_s),
            "replay_inference_per_s": round(inf / jsonl.elapsed_s),
            "target_inference_per_s": TARGET_INFERENCE_PER_S,
            "meets_target": inf / jsonl.elapsed_s >= TARGET_INFERENCE_PER_S,
            "alerts": len(jsonl.alerts),
        },
        "csv": {
            "rows": csv_result.n_rows,
            "replay_rows_per_s": round(csv_result.n_rows / csv_result.elapsed_s),
            "uncovered_kinds": csv_result.uncovered_kinds,
        },
        "cores": 1,
    }
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
