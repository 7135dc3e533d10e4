"""Upgrades keep what was learned: a snapshot written by the previous release restores,
detector by detector, and the findings that follow are that release's.

The fixture (tests/detectors/snapshots/engine_v1.*) was written by
``write_engine_v1.py`` at the release before detector state carried a version.
"""

from __future__ import annotations

import gzip
import json
import logging
import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.base import Detector, StateVersionError
from detectors.traffic import TrafficDetector
from stream.engine import Engine
from stream.replay.readers import JsonlSource
from stream.replay.runner import Replayer, ReplayResult

SNAPS = Path(__file__).parents[1] / "detectors" / "snapshots"


def _expected() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SNAPS / "engine_v1_expected.json").read_text())
    return data


def _replay_after(engine: Engine, tmp_path: Path) -> ReplayResult:
    events = tmp_path / "after.jsonl"
    events.write_bytes(gzip.decompress((SNAPS / "engine_v1_after.jsonl.gz").read_bytes()))
    return Replayer(engine=engine).run([JsonlSource(events)])


def _firing(res: ReplayResult, skip: set[str]) -> set[tuple[str, str]]:
    return {
        (a.detector, json.dumps(dict(a.labels), sort_keys=True))
        for a in res.alerts
        if a.status == "firing" and a.detector not in skip
    }


def _warmups() -> set[str]:
    """Detectors whose state changed since the fixture's release with no migration."""
    eng = Engine()
    return {
        d.name
        for d in eng.detectors
        if d.state_version > 1 and not _chain_from_1(type(d))  # documented warm-ups
    }


def _chain_from_1(cls: type[Detector[Any]]) -> bool:
    return all(v in cls.state_migrations for v in range(1, cls.state_version))


@pytest.fixture(scope="module")
def restored_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, ReplayResult]:
    eng = Engine.restore((SNAPS / "engine_v1.snapshot").read_bytes())
    return eng, _replay_after(eng, tmp_path_factory.mktemp("upgrade"))


def test_previous_release_snapshot_restores_every_detector_it_can(
    restored_run: tuple[Engine, ReplayResult],
) -> None:
    eng, _ = restored_run
    saved = orjson.loads((SNAPS / "engine_v1.snapshot").read_bytes())["detectors"]
    assert set(saved) >= {d.name for d in eng.detectors}
    # Only a detector that bumped its state version without a migration starts fresh.
    assert set(eng.fresh_detectors) == _warmups()
    end = _expected()["baseline_end"]
    assert end - 60 < Engine.restore((SNAPS / "engine_v1.snapshot").read_bytes()).watermark < end


def test_findings_after_restore_are_the_previous_releases(
    restored_run: tuple[Engine, ReplayResult],
) -> None:
    eng, res = restored_run
    exp = _expected()
    skip = set(eng.fresh_detectors)
    want = {(d, labels) for d, labels in exp["firing"] if d not in skip}
    got = _firing(res, skip)
    assert got == want, f"missing {sorted(want - got)}; new {sorted(got - want)}"
    # Anomalous findings that never became alerts may go where a detector's rule changed
    # on purpose (the firing alerts above still must not): latency (issue 14) holds back
    # a window p99 whose slow requests are in the past. The fixture's lone ttft_p99 blip
    # on gpu-node-01 had 1 of 283 fresh rows above its baseline p99, its p99 falling.
    changed = skip | {"latency"}
    anomalous = {
        (f["detector"], f["kind"]) for f in exp["anomalous"] if f["detector"] not in changed
    }
    assert anomalous <= {(f.detector, f.kind) for f in res.findings if f.anomalous}
    hot = {(f.detector, f.kind) for f in res.findings if f.anomalous}
    assert ("latency", "latency.tpot_p99") in hot  # the slowdown that fired still does


def test_each_incident_after_the_snapshot_is_caught(
    restored_run: tuple[Engine, ReplayResult],
) -> None:
    _, res = restored_run
    for inc in _expected()["incidents"]:
        target = inc["target"]
        hits = [
            a
            for a in res.alerts
            if a.status == "firing" and all(a.labels.get(k) == v for k, v in target.items())
        ]
        assert hits, f"{inc['kind']} on {target} not caught after the restore"


def test_older_state_runs_the_detectors_migration(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    snap = (SNAPS / "engine_v1.snapshot").read_bytes()
    ran: list[int] = []

    # One version past traffic's own chain (its real v1 -> v2 runs first).
    v = TrafficDetector.state_version

    def bump(payload: dict[str, Any]) -> dict[str, Any]:
        ran.append(len(payload["state"]))
        return {**payload, "state_version": v + 1}

    monkeypatch.setattr(TrafficDetector, "state_version", v + 1)
    monkeypatch.setattr(
        TrafficDetector, "state_migrations", {**TrafficDetector.state_migrations, v: bump}
    )
    with caplog.at_level(logging.WARNING, logger="llmwatch.engine"):
        eng = Engine.restore(snap)
    # Only documented warm-ups (a version bump without a migration) start fresh.
    assert ran and set(eng.fresh_detectors) == _warmups()
    traffic = next(d for d in eng.detectors if d.name == "traffic")
    assert traffic.active_series() > 0  # learned series kept through the migration
    assert not [r for r in caplog.records if "traffic" in r.getMessage()]
    # A snapshot written now carries the new version and restores without a migration.
    blob = pickle.loads(traffic.snapshot())
    assert blob["state_version"] == v + 1


def test_older_state_without_migration_starts_only_that_detector_fresh(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    snap = (SNAPS / "engine_v1.snapshot").read_bytes()
    monkeypatch.setattr(TrafficDetector, "state_version", 2)
    monkeypatch.setattr(TrafficDetector, "state_migrations", {})
    with caplog.at_level(logging.WARNING, logger="llmwatch.engine"):
        eng = Engine.restore(snap)
    assert set(eng.fresh_detectors) == {"traffic"} | _warmups()
    by_name = {d.name: d for d in eng.detectors}
    assert by_name["traffic"].active_series() == 0
    assert by_name["latency"].active_series() > 0  # the others keep what they learned
    warned = [r for r in caplog.records if "traffic" in r.getMessage()]
    assert warned and warned[0].levelno == logging.WARNING
    assert "version 1 has no migration" in warned[0].getMessage()


def test_newer_state_than_this_release_is_refused_by_name() -> None:
    det = TrafficDetector()
    payload = pickle.loads(det.snapshot())
    payload["state_version"] = TrafficDetector.state_version + 1
    with pytest.raises(StateVersionError, match=r"'traffic'.*newer than this release"):
        TrafficDetector.restore(pickle.dumps(payload))
