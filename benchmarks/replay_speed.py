"""Replay throughput on one core: JSONL inference events and a CSV metric series.

Prints one JSON object: for JSONL, read+decode rows/s (no detectors) and full
replay (decode + every default detector + lifecycle) inference events/s; for CSV,
full replay rows/s of a 1-second series and of a sparse (5-minute) one: a real
series from ../shared/data/nab_dev when it is there (``--sparse-csv``), else a
synthetic one. For the sparse series also the ceiling of the engine, lifecycle and
replay around a detector that reports per row (``row_findings``: replayed in whole-file
batches), which is what the series detector gets once it reports per row. Numba
compilation is warmed up first and not timed.

    .venv/bin/python -m benchmarks.replay_speed [--events N] [--csv-rows N] [--sparse-csv F]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from detectors.base import Detector, DetectorOutput, Finding
from schemas.columns import MetricColumns
from stream.engine import Engine
from stream.replay.readers import BadRow, open_source
from stream.replay.runner import Replayer, ReplayResult
from stream.simulate import FleetSpec, write

TARGET_INFERENCE_PER_S = 300_000
TARGET_SPARSE_ROWS_PER_S = 100_000
NAB_SERIES = (
    Path(__file__).resolve().parents[2]
    / "shared/data/nab_dev/realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv"
)


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


def _sparse_csv(work: Path, rows: int) -> Path:
    p = work / "sparse.csv"
    t0 = 1717401600
    with p.open("w") as fh:
        fh.write("timestamp,value\n")
        for i in range(rows):
            fh.write(f"{t0 + 300 * i},{50.0 + (i * 7919 % 97) / 10.0}\n")
    return p


class _RowThreshold(Detector[MetricColumns]):
    """A minimal per-row detector (a value above the series' running max so far, x1.5),
    to measure what is around a detector rather than the detector itself."""

    name = None  # type: ignore[assignment]  # kept out of detector discovery
    consumes = MetricColumns
    row_findings = True

    def update(self, batch: MetricColumns) -> DetectorOutput:
        v = np.asarray(batch.value, dtype=np.float64)
        ref = np.maximum.accumulate(np.r_[self.__dict__.get("top", v[0]), v])[:-1] * 1.5
        self.__dict__["top"] = float(max(self.__dict__.get("top", v[0]), v.max()))
        hot = v > ref
        ts = np.asarray(batch.ts, dtype=np.float64)
        findings = [
            Finding("ceiling", "ceiling.high", {"series": str(batch.series[i])},
                    float(ts[i]), 0.9, True, observed=float(v[i]))
            for i in np.flatnonzero(hot).tolist()
        ]  # fmt: skip
        return DetectorOutput(np.where(hot, 0.9, 0.1), findings)


def _best_rate(path: Path, engine: Callable[[], Engine | None], runs: int = 3) -> dict[str, Any]:
    best: ReplayResult | None = None
    for _ in range(runs):
        r = Replayer(engine=engine()).run([open_source(path)])
        if best is None or r.elapsed_s < best.elapsed_s:
            best = r
    assert best is not None
    return {"rows": best.n_rows, "rows_per_s": round(best.n_rows / best.elapsed_s)}


def _ceiling_engine() -> Engine:
    det = _RowThreshold()
    det.name = "ceiling"  # type: ignore[assignment,misc]  # a ClassVar, set on one instance
    return Engine(detectors=[det])


def _sparse(path: Path) -> dict[str, Any]:
    full = _best_rate(path, lambda: None)
    ceiling = _best_rate(path, _ceiling_engine)
    return {
        "file": path.name,
        "rows": full["rows"],
        "replay_rows_per_s": full["rows_per_s"],
        "target_rows_per_s": TARGET_SPARSE_ROWS_PER_S,
        "meets_target": full["rows_per_s"] >= TARGET_SPARSE_ROWS_PER_S,
        "row_findings_ceiling_rows_per_s": ceiling["rows_per_s"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--csv-rows", type=int, default=300_000)
    ap.add_argument("--sparse-csv", type=Path, default=NAB_SERIES if NAB_SERIES.exists() else None)
    ap.add_argument("--sparse-rows", type=int, default=20_000, help="synthetic, without a file")
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
        sparse = _sparse(args.sparse_csv or _sparse_csv(work, args.sparse_rows))
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
        "csv_sparse": sparse,
        "cores": 1,
    }
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
