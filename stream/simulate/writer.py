"""JSONL files for a simulated run: events (one file, or one per kind) and labels."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
from pydantic import TypeAdapter

from .engine import simulate
from .incidents import labels
from .spec import FleetSpec, Incident

KINDS = ("inference", "gpu", "feedback")
_INCIDENTS = TypeAdapter(list[Incident])


@dataclass(frozen=True)
class SimulationFiles:
    labels: Path
    events: Path | None = None  # all kinds together, when not split
    by_kind: dict[str, Path] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def paths(self) -> list[Path]:
        return [p for p in (self.events, *self.by_kind.values()) if p is not None] + [self.labels]


def write(
    spec: FleetSpec, incidents: list[Incident], out_dir: Path, split_by_kind: bool = False
) -> SimulationFiles:
    """Write events.jsonl (or inference/gpu/feedback.jsonl) and labels.jsonl under out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(KINDS, 0)
    paths = {k: out_dir / f"{k}.jsonl" for k in KINDS} if split_by_kind else {}
    events_path = None if split_by_kind else out_dir / "events.jsonl"
    handles: dict[str, IO[bytes]] = {}
    try:
        if events_path is not None:
            shared = events_path.open("wb")
            handles = dict.fromkeys(KINDS, shared)
        else:
            handles = {k: p.open("wb") for k, p in paths.items()}
        dumps = orjson.dumps
        for chunk in simulate(spec, incidents):
            if events_path is not None:
                handles["inference"].write(b"\n".join(map(dumps, chunk)) + b"\n")
                for d in chunk:
                    counts[d["kind"]] += 1
                continue
            parts: dict[str, list[bytes]] = {k: [] for k in KINDS}
            for d in chunk:
                parts[d["kind"]].append(dumps(d))
            for k, lines in parts.items():
                if lines:
                    handles[k].write(b"\n".join(lines) + b"\n")
                    counts[k] += len(lines)
    finally:
        for h in {id(h): h for h in handles.values()}.values():
            h.close()
    labels_path = out_dir / "labels.jsonl"
    with labels_path.open("wb") as fh:
        for row in labels(spec, incidents):
            fh.write(orjson.dumps(row) + b"\n")
    return SimulationFiles(labels=labels_path, events=events_path, by_kind=paths, counts=counts)


def load_incidents(path: Path) -> list[Incident]:
    """Incidents from a JSON file: a list of Incident objects (or {"incidents": [...]})."""
    data = json.loads(path.read_text())
    if isinstance(data, dict):
        data = data.get("incidents", [])
    return _INCIDENTS.validate_python(data)
