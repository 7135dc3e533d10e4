"""Simulator: determinism, labels, realism against the reference traces, files and CLI."""

from __future__ import annotations

import csv
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from schemas.models import WIRE_MODELS
from stream.cli import main
from stream.simulate import (
    FleetSpec,
    Incident,
    IncidentKind,
    default_incidents,
    labels,
    simulate,
    write,
)
from stream.simulate.load import Load
from stream.simulate.reference import default_data_dir, load_reference

DATA = default_data_dir()
SMALL = FleetSpec(seed=3, duration_s=120.0, rate=100.0, hosts=3, gpus_per_host=2)


@pytest.fixture(scope="module")
def quiet() -> list[dict[str, Any]]:
    spec = FleetSpec(seed=5, duration_s=300.0, rate=200.0, hosts=3, gpus_per_host=2)
    return [d for chunk in simulate(spec, []) for d in chunk]


def test_same_spec_same_bytes_and_seed_matters(tmp_path: Path) -> None:
    inc = default_incidents(SMALL, 3)
    a = write(SMALL, inc, tmp_path / "a")
    b = write(SMALL, inc, tmp_path / "b")
    c = write(SMALL.model_copy(update={"seed": 4}), inc, tmp_path / "c")
    assert a.events is not None and b.events is not None and c.events is not None
    assert a.events.read_bytes() == b.events.read_bytes()
    assert a.labels.read_bytes() == b.labels.read_bytes()
    assert a.events.read_bytes() != c.events.read_bytes()
    split = write(SMALL, inc, tmp_path / "s", split_by_kind=True)
    assert set(split.by_kind) == {"inference", "gpu", "feedback"}
    lines = a.events.read_bytes().splitlines()
    assert sum(len(p.read_bytes().splitlines()) for p in split.by_kind.values()) == len(lines)
    assert split.counts == a.counts and sum(a.counts.values()) == len(lines)


def test_default_incidents_cover_every_kind_without_overlap() -> None:
    spec = FleetSpec(duration_s=3600.0)
    incs = default_incidents(spec, 1)
    assert {i.kind for i in incs} == set(IncidentKind)
    assert default_incidents(spec, 1) == incs and default_incidents(spec, 2) != incs
    spans = sorted((i.start_offset_s, i.end_offset_s) for i in incs)
    assert spans[0][0] > 0.1 * spec.duration_s and spans[-1][1] <= spec.duration_s
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_labels_match_incidents(tmp_path: Path) -> None:
    inc = default_incidents(SMALL, 9)
    files = write(SMALL, inc, tmp_path)
    rows = [json.loads(line) for line in files.labels.read_text().splitlines()]
    assert rows == labels(SMALL, inc)
    assert len({r["incident_id"] for r in rows}) == len(inc)
    for row, i in zip(rows, inc, strict=True):
        assert row["kind"] == i.kind.value and row["target"] == i.target
        assert row["severity"] == i.severity
        start = datetime.fromisoformat(row["start"])
        assert start == SMALL.start + timedelta(seconds=i.start_offset_s)
        assert datetime.fromisoformat(row["end"]) - start == timedelta(seconds=i.duration_s)
        assert row["start"].endswith("Z")


def test_bad_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="needs label"):
        Incident(kind="error_burst", start_offset_s=1, duration_s=5, target={"model": "x"})
    bad = Incident(
        kind="gateway_silent", start_offset_s=1, duration_s=5, target={"gateway": "nope"}
    )
    with pytest.raises(ValueError, match="not in the fleet"):
        next(simulate(SMALL, [bad]))


def test_quiet_fleet_validates_and_is_plausible(quiet: list[dict[str, Any]]) -> None:
    rng = np.random.default_rng(1)
    for i in rng.choice(len(quiet), 3000, replace=False):
        WIRE_MODELS[quiet[i]["kind"]].model_validate(quiet[i])
    inf = [d for d in quiet if d["kind"] == "inference"]
    assert 0.85 * 200 * 300 < len(inf) < 1.15 * 200 * 300
    errors = sum(d["status"] != "ok" for d in inf) / len(inf)
    assert 0.001 <= errors <= 0.01
    length = sum(d["finish_reason"] == "length" for d in inf) / len(inf)
    stop = sum(d["finish_reason"] == "stop" for d in inf) / len(inf)
    assert 0.02 < length < 0.1 and stop > 0.85
    assert all(d["host"] for d in inf)
    gpus = {(d["host"], d["gpu_uuid"]) for d in quiet if d["kind"] == "gpu"}
    assert len(gpus) == 6
    assert sum(d["kind"] == "gpu" for d in quiet) == 6 * 300
    assert not any("xid" in d for d in quiet if d["kind"] == "gpu")


def _azure_medians() -> tuple[float, float]:
    prompts: list[int] = []
    outputs: list[int] = []
    for name in ("code", "conv"):
        with (DATA / "azure_llm_2023" / f"AzureLLMInferenceTrace_{name}.csv").open() as fh:
            for row in csv.DictReader(fh):
                prompts.append(int(row["ContextTokens"]))
                outputs.append(int(row["GeneratedTokens"]))
    return float(np.median(prompts)), float(np.median(outputs))


@pytest.mark.skipif(not DATA.is_dir(), reason="reference data folder not present")
def test_token_counts_follow_azure(quiet: list[dict[str, Any]]) -> None:
    assert load_reference().from_files
    prompt_med, output_med = _azure_medians()
    ok = [d for d in quiet if d["kind"] == "inference" and d["status"] == "ok"]
    assert prompt_med / 1.5 < np.median([d["prompt_tokens"] for d in ok]) < prompt_med * 1.5
    assert output_med / 2 < np.median([d["completion_tokens"] for d in ok]) < output_med * 2


@pytest.mark.skipif(not DATA.is_dir(), reason="reference data folder not present")
def test_latency_follows_llmperf(quiet: list[dict[str, Any]]) -> None:
    measured: dict[str, list[float]] = {}
    for path in (DATA / "llmperf_leaderboard" / "individual").glob("*_70b.json"):
        for r in json.loads(path.read_text()):
            if r["error_code"] is None and r["ttft_s"]:
                measured.setdefault("ttft", []).append(r["ttft_s"] * 1000)
                measured.setdefault("itl", []).append(r["inter_token_latency_s"] * 1000)
    ok = [d for d in quiet if d.get("model") == "llama-2-70b" and d.get("status") == "ok"]
    ttft = np.median([d["ttft_ms"] for d in ok])
    tpot = np.median([d["tpot_ms"] for d in ok])
    assert np.median(measured["ttft"]) / 2 < ttft < np.median(measured["ttft"]) * 2
    assert np.median(measured["itl"]) / 2 < tpot < np.median(measured["itl"]) * 2
    assert all(d["queue_ms"] <= d["ttft_ms"] <= d["latency_ms"] for d in ok)


def test_gpu_telemetry_tracks_load(quiet: list[dict[str, Any]]) -> None:
    gpu = [d for d in quiet if d["kind"] == "gpu"]
    sm = np.array([d["sm_util_pct"] for d in gpu])
    power = np.array([d["power_w"] for d in gpu])
    temp = np.array([d["temp_c"] for d in gpu])
    assert 30 < sm.mean() < 95
    assert np.corrcoef(sm, power)[0, 1] > 0.8 and np.corrcoef(sm, temp)[0, 1] > 0.8
    assert all(d["clocks_event_reasons"] & ~0x5 == 0 for d in gpu)  # no throttling when quiet


def test_diurnal_shape_over_a_day() -> None:
    spec = FleetSpec(duration_s=86_400.0, rate=100.0, start=datetime(2024, 6, 3, tzinfo=UTC))
    load = Load(spec, load_reference())
    hourly = np.array(
        [load.intensity(np.arange(h * 3600.0, (h + 1) * 3600.0, 5.0)).mean() for h in range(24)]
    )
    assert hourly.max() > 1.6 * hourly.min()
    assert 12 <= int(np.argmax(hourly)) <= 18  # afternoon UTC peak
    assert hourly.mean() == pytest.approx(100.0, rel=0.02)


def test_cli_writes_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inc_file = tmp_path / "inc.json"
    inc_file.write_text(
        json.dumps(
            [
                {
                    "kind": "gateway_silent",
                    "start_offset_s": 20,
                    "duration_s": 30,
                    "target": {"gateway": "gw-eu-west"},
                }
            ]
        )
    )
    out = tmp_path / "out"
    args = ["simulate", "--out", str(out), "--duration", "1m", "--rate", "50", "--seed", "2"]
    assert main([*args, "--incidents", str(inc_file), "--split"]) == 0
    assert "wrote" in capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["feedback.jsonl", "gpu.jsonl", "inference.jsonl", "labels.jsonl"]
    inference = [orjson.loads(x) for x in (out / "inference.jsonl").read_bytes().splitlines()]
    assert 0.7 * 50 * 60 < len(inference) < 1.3 * 50 * 60
    assert all(d["kind"] == "inference" for d in inference)
    (label,) = [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()]
    assert label["kind"] == "gateway_silent" and label["target"] == {"gateway": "gw-eu-west"}
    assert main([*args, "--out", str(tmp_path / "none"), "--incidents", "none"]) == 0
    assert (tmp_path / "none" / "labels.jsonl").read_text() == ""
    assert (tmp_path / "none" / "events.jsonl").stat().st_size > 0
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps([{"kind": "gpu_xid", "start_offset_s": 1, "duration_s": 5, "target": {}}])
    )
    assert main([*args, "--incidents", str(bad)]) == 2
