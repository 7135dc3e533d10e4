"""Writes the engine snapshot fixture of the previous release (run once, at that release).

``engine_v1.snapshot`` is an ``Engine.snapshot()`` taken after a quiet baseline of a small
simulated fleet; ``engine_v1_after.jsonl.gz`` holds the events that followed it (with
incidents), and ``engine_v1_expected.json`` the alerts and anomalous findings that release
produced when it restored the snapshot and read those events. tests/stream/test_upgrade.py
restores the snapshot with today's code and checks the findings that follow.

    .venv/bin/python tests/detectors/snapshots/write_engine_v1.py

Written at git 28a451b (before any detector state carried a version).
"""

from __future__ import annotations

import gzip
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import orjson

from stream.engine import Engine
from stream.replay.readers import JsonlSource
from stream.replay.runner import Replayer
from stream.simulate import FleetSpec, Incident, IncidentKind, simulate

HERE = Path(__file__).parent
BASELINE_S = 1800.0
SPEC = FleetSpec(
    seed=11,
    start=datetime(2024, 6, 3, 8, 0, tzinfo=UTC),
    duration_s=2700.0,
    rate=12.0,
    gateways=("gw-us-east", "gw-eu-west"),
    models=("llama-3-8b", "llama-2-70b"),
    versions=(2, 1),
    hosts=2,
    gpus_per_host=2,
    gpu_interval_s=5.0,
    feedback_fraction=0.05,
)
INCIDENTS = [
    Incident(
        kind=IncidentKind.ERROR_BURST,
        start_offset_s=1900.0,
        duration_s=300.0,
        severity=1.5,
        target={"gateway": "gw-us-east", "model": "llama-3-8b"},
    ),
    Incident(
        kind=IncidentKind.GPU_XID,
        start_offset_s=2000.0,
        duration_s=300.0,
        target={"host": "gpu-node-02", "gpu_uuid": "GPU-placeholder"},
        detail="79",
    ),
    Incident(
        kind=IncidentKind.LATENCY_REGRESSION,
        start_offset_s=2300.0,
        duration_s=350.0,
        severity=1.5,
        target={"model": "llama-3-8b", "model_version": "v3"},
    ),
]


def _incidents() -> list[Incident]:
    from stream.simulate.spec import Fleet

    gpu = Fleet.from_spec(SPEC).gpu_uuids[1][0]
    out = []
    for inc in INCIDENTS:
        if inc.kind is IncidentKind.GPU_XID:
            inc = inc.model_copy(update={"target": {"host": "gpu-node-02", "gpu_uuid": gpu}})
        out.append(inc)
    return out


def _split(tmp: Path) -> tuple[Path, Path]:
    cut = SPEC.start.timestamp() + BASELINE_S
    before, after = tmp / "before.jsonl", tmp / "after.jsonl"
    with before.open("wb") as b, after.open("wb") as a:
        for chunk in simulate(SPEC, _incidents()):
            for d in chunk:
                ts = datetime.fromisoformat(str(d["ts"]).replace("Z", "+00:00")).timestamp()
                (b if ts < cut else a).write(orjson.dumps(d) + b"\n")
    return before, after


def _finding(f: object) -> dict[str, object]:
    return {
        "detector": f.detector,  # type: ignore[attr-defined]
        "kind": f.kind,  # type: ignore[attr-defined]
        "series": dict(f.series),  # type: ignore[attr-defined]
        "ts": f.ts,  # type: ignore[attr-defined]
    }


def main() -> None:
    tmp = HERE / "_tmp_engine_v1"
    tmp.mkdir(exist_ok=True)
    before, after = _split(tmp)
    first = Replayer()
    first.run([JsonlSource(before)])
    snap = first.engine.snapshot()
    (HERE / "engine_v1.snapshot").write_bytes(snap)
    packed = gzip.compress(after.read_bytes(), compresslevel=9, mtime=0)
    (HERE / "engine_v1_after.jsonl.gz").write_bytes(packed)
    res = Replayer(engine=Engine.restore(snap)).run([JsonlSource(after)])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    expected = {
        "written_at": commit,
        "baseline_end": SPEC.start.timestamp() + BASELINE_S,
        "incidents": [i.model_dump(mode="json") for i in _incidents()],
        "firing": sorted(
            {
                (a.detector, json.dumps(dict(a.labels), sort_keys=True))
                for a in res.alerts
                if a.status == "firing"
            }
        ),
        "anomalous": [_finding(f) for f in res.findings if f.anomalous],
    }
    (HERE / "engine_v1_expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()


if __name__ == "__main__":
    main()
