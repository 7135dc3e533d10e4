"""``llmwatch tune``: random search over detector and lifecycle settings on labelled replays.

Parameter space (``SPACE``): dotted config paths, each with the values tried. Paths
that the current config does not have (a detector that is not installed) are
skipped. Trial 0 is always the base config, so "best" is never worse than it.

Objective, per trial, over all replays pooled:

    objective = F1 - DELAY_WEIGHT * median_delay_s - FALSE_WEIGHT * false_alerts_per_series_day

with F1 from incident recall and alert precision (see ``scoring``) and a missing
median delay (nothing detected) counted as the matching grace.

On a folder of labelled CSV series (``tune_labelled``: NAB layout with windows.json, or
``timestamp,value,label`` files) the objective is the real-data score instead: NAB's
standard-profile score from alert onsets (``stream.replay.labelled``), and each trial
reports the alert budget it achieves (false alerts per series-week).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream.config import LlmwatchConfig, config_data, dump_config, parse_config

from .labelled import evaluate_runs, load_folder, replay_series
from .readers import BadRow, Chunk, CsvSource, Source, open_source
from .runner import Replayer
from .scoring import DEFAULT_GRACE_S, Incident, load_labels, summarize
from .tune_report import write_tune_report

DELAY_WEIGHT = 0.002  # 0.1 of F1 per 50 s of median delay
FALSE_WEIGHT = 0.01  # 0.01 of F1 per false alert per series-day

SPACE: dict[str, list[Any]] = {
    "lifecycle.defaults.for_s": [0.0, 10.0, 20.0, 30.0, 60.0],
    "lifecycle.defaults.fire_threshold": [0.5, 0.55, 0.6, 0.7, 0.8],
    "detectors.latency.threshold_z": [3.0, 4.0, 5.0, 6.0, 8.0],
    "detectors.latency.window_half_life_s": [30.0, 60.0, 120.0],
    "detectors.error_rate.rate_factor": [2.0, 3.0, 4.0, 6.0],
    "detectors.error_rate.confidence_z": [2.0, 3.0, 4.0],
    "detectors.feedback.z_threshold": [3.0, 4.0, 5.0, 6.0],
    "detectors.drift.ph_threshold": [6.0, 8.0, 12.0, 16.0],
    "detectors.drift.effect_threshold": [0.75, 1.0, 1.5, 2.0],
    "detectors.gpu_health.throttle_fraction": [0.3, 0.5, 0.7],
    "detectors.series.alert_budget.false_alerts_per_series_week": [0.25, 0.5, 1.0, 2.0, 4.0],
    "detectors.series.window_samples": [5.0, 10.0, 20.0],
    "detectors.series.rebase_after_samples": [6, 12, 24],
}


class CachedSource:
    """A source decoded once and replayed many times (columns are never mutated)."""

    def __init__(self, source: Source) -> None:
        self.name = source.name
        self.size_bytes = source.size_bytes
        self.bad: list[BadRow] = []
        self._chunks = list(source.chunks(self.bad))
        self._table = source.table if isinstance(source, CsvSource) else None

    def chunks(self, bad: list[BadRow]) -> Iterator[tuple[Chunk, int]]:
        bad.extend(self.bad)
        yield from self._chunks


@dataclass(frozen=True)
class Dataset:
    sources: list[CachedSource]
    incidents: list[Incident]


def _get(data: dict[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def usable_space(base: LlmwatchConfig) -> dict[str, list[Any]]:
    data = base.model_dump(mode="json")
    return {p: v for p, v in SPACE.items() if _get(data, p)[0]}


def apply(base: LlmwatchConfig, params: dict[str, Any]) -> LlmwatchConfig:
    data = config_data(base)  # without the outgrown settings: no warning per trial
    for path, value in params.items():
        _set(data, path, value)
    rule = data["lifecycle"]["defaults"]
    # Keep hysteresis valid whatever the fire threshold became.
    rule["resolve_threshold"] = min(rule["resolve_threshold"], rule["fire_threshold"])
    return parse_config(data, "tuning trial")


def objective(summary: dict[str, Any], grace_s: float) -> float:
    f1 = summary["f1"] or 0.0
    delay = summary["delay_s"]["p50"]
    fa = summary["false_alerts_per_series_day"] or 0.0
    return float(f1 - DELAY_WEIGHT * (grace_s if delay is None else delay) - FALSE_WEIGHT * fa)


def evaluate(config: LlmwatchConfig, datasets: Sequence[Dataset], grace_s: float) -> dict[str, Any]:
    """Replay every dataset with ``config``; pool the counts of the per-dataset summaries."""
    parts = []
    for ds in datasets:
        result = Replayer(config).run(ds.sources)
        parts.append(
            summarize(
                result.alerts,
                ds.incidents,
                n_series=result.n_series,
                span_s=result.span_s,
                grace_s=grace_s,
            )
        )
    return pool(parts)


def pool(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One summary-like dict from several replays' summaries (counts add up)."""
    firing = sum(p["firing_alerts"] for p in parts)
    matched = sum(p["matched_alerts"] for p in parts)
    incidents = sum(p["incidents"] for p in parts)
    delays = [r["delay_s"] for p in parts for r in p["incident_results"] if r["detected"]]
    series_days = sum(p["series"] * p["span_s"] / 86400.0 for p in parts)
    precision = matched / firing if firing else None
    recall = len(delays) / incidents if incidents else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "incidents": incidents,
        "detected": len(delays),
        "firing_alerts": firing,
        "matched_alerts": matched,
        "false_alerts": firing - matched,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_alerts_per_series_day": (firing - matched) / series_days if series_days else None,
        "delay_s": {
            "p50": float(np.median(delays)) if delays else None,
            "max": max(delays) if delays else None,
        },
    }


def load_datasets(events: Sequence[Path], labels: Sequence[Path]) -> list[Dataset]:
    if len(events) != len(labels):
        raise ValueError(
            f"give one --labels per --events ({len(events)} events, {len(labels)} labels)"
        )
    return [
        Dataset([CachedSource(open_source(e))], load_labels(lab))
        for e, lab in zip(events, labels, strict=True)
    ]


def _search(
    base: LlmwatchConfig | None,
    trials: int,
    seed: int,
    trial: Callable[[LlmwatchConfig], tuple[float, dict[str, Any]]],
) -> tuple[LlmwatchConfig, list[dict[str, Any]]]:
    """Random search over ``usable_space``: trial 0 is the base config itself; ``trial``
    scores one config (objective, row of figures). Returns the best and every row."""
    base_cfg = base if base is not None else LlmwatchConfig()
    space = usable_space(base_cfg)
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    best: tuple[float, LlmwatchConfig] | None = None
    for n in range(max(1, trials)):
        params = {} if n == 0 else {p: rng.choice(v) for p, v in space.items()}
        cfg = apply(base_cfg, params)
        score, figures = trial(cfg)
        rows.append({"trial": n, "params": params, "objective": score, **figures})
        if best is None or score > best[0]:
            best = (score, cfg)
    assert best is not None
    return best[1], rows


def tune(
    datasets: Sequence[Dataset],
    *,
    base: LlmwatchConfig | None = None,
    trials: int = 20,
    seed: int = 0,
    grace_s: float = DEFAULT_GRACE_S,
) -> tuple[LlmwatchConfig, list[dict[str, Any]]]:
    """Random search; returns the best config and every trial's parameters and scores."""

    def trial(cfg: LlmwatchConfig) -> tuple[float, dict[str, Any]]:
        s = evaluate(cfg, datasets, grace_s)
        return objective(s, grace_s), {
            "precision": s["precision"],
            "recall": s["recall"],
            "f1": s["f1"],
            "delay_p50_s": s["delay_s"]["p50"],
            "false_alerts_per_series_day": s["false_alerts_per_series_day"],
        }

    return _search(base, trials, seed, trial)


def evaluate_labelled(
    config: LlmwatchConfig, folder: Path, row_interval_s: float | None = None
) -> dict[str, Any]:
    """Every series under ``folder`` replayed with ``config`` and scored (overall figures)."""
    runs = [replay_series(s, config) for s in load_folder(folder, row_interval_s)]
    overall: dict[str, Any] = evaluate_runs(runs)["overall"]
    return overall


def tune_labelled(
    folder: Path,
    *,
    base: LlmwatchConfig | None = None,
    trials: int = 20,
    seed: int = 0,
    row_interval_s: float | None = None,
) -> tuple[LlmwatchConfig, list[dict[str, Any]]]:
    """Random search on labelled CSV series; objective = NAB score from alert onsets."""

    def trial(cfg: LlmwatchConfig) -> tuple[float, dict[str, Any]]:
        o = evaluate_labelled(cfg, folder, row_interval_s)
        score = float(o["nab_onset"] if o["nab_onset"] is not None else -o["false_alerts"])
        alerts = o["alerts"]
        return score, {
            "nab_onset": o["nab_onset"],
            "nab_rows_best": o["nab_rows_best"],
            "precision": (alerts - o["false_alerts"]) / alerts if alerts else None,
            "recall": o["incident_recall"],
            "delay_p50_s": o["median_delay_s"],
            # The alert budget this trial achieves, as the config's own setting reads.
            "false_alerts_per_series_week": o["false_alerts_per_series_week"],
        }

    return _search(base, trials, seed, trial)


def write_results(out: Path, best: LlmwatchConfig, rows: list[dict[str, Any]]) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "best": out / "best.yaml",
        "trials": out / "trials.json",
        "plot": out / "tradeoff.png",
        "report": out / "tune.html",
    }
    paths["best"].write_text(dump_config(best), encoding="utf-8")
    labelled = bool(rows) and "nab_onset" in rows[0]
    formula = (
        "NAB standard-profile score from alert onsets (labelled CSV series)"
        if labelled
        else "F1 - delay_weight*median_delay_s - false_weight*false_per_series_day"
    )
    doc = {
        "objective": {
            "formula": formula,
            "delay_weight": DELAY_WEIGHT,
            "false_weight": FALSE_WEIGHT,
        },
        "space": SPACE,
        "trials": rows,
    }
    paths["trials"].write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    write_tune_report(paths["plot"], paths["report"], rows, formula)
    return paths
