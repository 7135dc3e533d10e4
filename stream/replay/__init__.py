"""Offline replay: recorded events through the live detectors and alert lifecycle."""

from .pipeline import ReplayOutcome, replay_files
from .readers import BadRow, CsvSource, JsonlSource, open_source
from .runner import Replayer, ReplayResult, replay
from .scoring import Incident, load_labels, match, summarize

__all__ = [
    "BadRow",
    "CsvSource",
    "Incident",
    "JsonlSource",
    "ReplayOutcome",
    "ReplayResult",
    "Replayer",
    "load_labels",
    "match",
    "open_source",
    "replay",
    "replay_files",
    "summarize",
]
