"""Seeded, deterministic LLM fleet simulator with an incident catalog.

``simulate(spec, incidents)`` yields time-ordered chunks of wire-format dicts
(inference, gpu, feedback); ``labels`` gives the ground truth for the incidents;
``write`` puts both on disk as JSONL.
"""

from .engine import WINDOW_S, simulate
from .incidents import default_incidents, labels
from .spec import FleetSpec, Incident, IncidentKind
from .writer import SimulationFiles, load_incidents, write

__all__ = [
    "WINDOW_S",
    "FleetSpec",
    "Incident",
    "IncidentKind",
    "SimulationFiles",
    "default_incidents",
    "labels",
    "load_incidents",
    "simulate",
    "write",
]
