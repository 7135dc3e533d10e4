"""Every benchmark, each in its own subprocess; one JSON object and benchmarks/RESULTS.md.

    .venv/bin/python -m benchmarks.run_all [--quick] [--no-write] [--only NAME,...]

Order: kernels, decode_speed, replay_speed (JSONL and CSV), service_throughput,
detection_latency, memory, and quality (simulated, then real labelled series) last.
A benchmark that fails or times out is recorded with its error and the rest still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.report import render, with_hand_section

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bench:
    name: str
    args: tuple[str, ...] = ()
    quick: tuple[str, ...] = ("--quick",)
    timeout_s: float = 360.0
    key: str = ""  # result name when one benchmark runs twice with other arguments

    @property
    def label(self) -> str:
        return self.key or self.name


def again(name: str, key: str, *args: str) -> Bench:
    """A labelled-series benchmark run a second time with other arguments (``--jobs 2``
    and ``args``, quick or not) under its own result name ``key``."""
    both = ("--jobs", "2", *args)
    return Bench(name, both, quick=both, timeout_s=900.0, key=key)


BENCHES = (
    Bench("kernels", quick=()),
    Bench("decode_speed", quick=("--events", "5000", "--repeat", "2")),
    Bench("otlp_decode", quick=("--spans", "5000", "--repeat", "2")),
    Bench("replay_speed", quick=("--events", "20000", "--csv-rows", "20000")),
    Bench("service_throughput", ("--limit-s", "75")),
    Bench(
        "service_throughput",
        ("--broker", "kafka09", "--events", "300000", "--limit-s", "60"),
        quick=("--broker", "kafka09", "--quick"),
        key="service_throughput_kafka09",
    ),
    Bench("detection_latency", ("--injections", "4", "--warmup-s", "30")),
    # The same below the worker's saturation point: the pipeline's own latency.
    Bench(
        "detection_latency",
        ("--rate", "2000", "--injections", "6", "--warmup-s", "30"),
        key="detection_latency_2k",
    ),
    Bench("memory", ("--sizes", "10000,100000,1000000")),
    Bench("quality", quick=("--duration", "1800")),
    # The alert budget on synthetic series with nothing wrong: false alerts per series-week.
    Bench("budget_calibration"),
    # Real labelled series (../shared/data/nab_dev): NAB score, false alerts per series-week.
    Bench("quality_real", ("--jobs", "2"), quick=("--jobs", "2"), timeout_s=900.0),
    # The same series with a tenth of their rows missing (three seeded copies).
    again("quality_real", "quality_real_missed", "--missed", "0.1"),
    # Hourly probes whose CSVs number their rows: the interval read from a daily cycle.
    Bench("numbered_probe", ("--jobs", "2"), quick=("--jobs", "2"), timeout_s=900.0),
    # The same with 8-20 anomalies a series (about 7% of rows): tails that learn the
    # anomalies not paged lose the later ones.
    again("numbered_probe", "numbered_probe_dense", "--anomalies", "8-20"),
)


def first_json(text: str) -> Any:
    """The first JSON object in ``text`` (benchmarks print a table after it)."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in the output")
    obj, _ = json.JSONDecoder().raw_decode(text[start:])
    return obj


def run_one(bench: Bench, quick: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", f"benchmarks.{bench.name}", *bench.args]
    if quick:
        cmd = [sys.executable, "-m", f"benchmarks.{bench.name}", *bench.quick]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=bench.timeout_s, cwd=HERE.parent
        )
    except subprocess.TimeoutExpired:
        return {"command": cmd_text(cmd), "error": f"timed out after {bench.timeout_s} s"}
    took = round(time.perf_counter() - started, 1)
    entry: dict[str, Any] = {"command": cmd_text(cmd), "seconds": took}
    if done.returncode != 0:
        entry["error"] = f"exit {done.returncode}: {done.stderr[-1500:]}"
        return entry
    try:
        entry["result"] = first_json(done.stdout)
    except ValueError as exc:
        entry["error"] = f"{exc}: {done.stdout[-500:]}"
    return entry


def cmd_text(cmd: list[str]) -> str:
    return " ".join([".venv/bin/python", *cmd[1:]])


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_1m_at_start": round(load, 2),
    }


def _write(path: Path, rendered: str) -> None:
    old = path.read_text(encoding="utf-8") if path.exists() else None
    path.write_text(with_hand_section(rendered, old), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="every benchmark's smoke run")
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument(
        "--from-json", type=Path, default=None, help="only re-render RESULTS.md from a saved run"
    )
    args = ap.parse_args(argv)
    if args.from_json is not None:
        _write(args.results, render(first_json(args.from_json.read_text())))
        return 0
    wanted = {s for s in args.only.split(",") if s}
    unknown = wanted - {b.label for b in BENCHES}
    if unknown:
        raise SystemExit(f"--only: unknown benchmark(s) {sorted(unknown)}")
    out: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "quick": args.quick,
        "benchmarks": {},
    }
    started = time.perf_counter()
    for bench in BENCHES:
        if wanted and bench.label not in wanted:
            continue
        sys.stderr.write(f"running {bench.label} ...\n")
        out["benchmarks"][bench.label] = run_one(bench, args.quick)
    out["total_s"] = round(time.perf_counter() - started, 1)
    sys.stdout.write(json.dumps(out) + "\n")
    if not args.no_write:
        _write(args.results, render(out))
        sys.stderr.write(f"wrote {args.results}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
