"""Detection quality of the default config on simulated fleets never used for tests or tuning.

Three fleets (own seeds, shapes and rates), each with two rounds of incidents so
every incident kind occurs at least twice per fleet. Scores alerts against the
labels with the replay matching rule (stream.replay.scoring) and prints one JSON
object: per incident kind and overall recall, alert precision, median detection
delay (event time) and false alerts per 100 series-hours, with the targets.

    .venv/bin/python -m benchmarks.quality [--duration S] [--rate R] [--alerts-out DIR]

``--alerts-out`` writes each fleet's alerts (one JSON per line, alerts_<seed>.jsonl) so
two revisions can be compared alert for alert (a refactor must leave them identical).
``recall_by_detector`` per incident kind says which detector catches what on its own:
an incident counts as detected as soon as any detector's alert matches it, so a kind's
recall can hide that its own detector (feedback for feedback_decline) misses it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from stream.replay.pipeline import notifications
from stream.replay.readers import open_source
from stream.replay.runner import Replayer
from stream.replay.scoring import load_labels, summarize
from stream.simulate import FleetSpec, Incident, default_incidents, write
from stream.simulate.reference import load_reference

TARGETS = {
    "recall": 0.95,
    "precision": 0.90,
    "median_delay_s": 60.0,
    "false_alerts_per_100_series_hours": 1.0,
}
# Seeds 9xxx are reserved for this benchmark: no test or tuning run uses them.
FLEETS: list[dict[str, Any]] = [
    {"seed": 9101, "hosts": 6, "gpus_per_host": 8, "rate_factor": 1.0},
    {
        "seed": 9202,
        "hosts": 9,
        "gpus_per_host": 4,
        "rate_factor": 1.5,
        "gateways": ("gw-a", "gw-b"),
        "models": ("llama-3-8b", "mixtral-8x7b", "llama-2-70b"),
    },
    {
        "seed": 9303,
        "hosts": 4,
        "gpus_per_host": 8,
        "rate_factor": 0.7,
        "models": ("phi-3-mini", "llama-3-70b"),
        "versions": (2, 1),
    },
]


def incidents(spec: FleetSpec, rounds: int = 2) -> list[Incident]:
    """``rounds`` shuffled rounds of one incident of every kind, back to back."""
    out: list[Incident] = []
    part = spec.duration_s / rounds
    for r in range(rounds):
        sub = spec.model_copy(update={"duration_s": part})
        for inc in default_incidents(sub, spec.seed * 10 + r):
            out.append(inc.model_copy(update={"start_offset_s": inc.start_offset_s + r * part}))
    return out


def run_fleet(
    fleet: dict[str, Any], duration: float, rate: float, work: Path, alerts_out: Path | None = None
) -> dict[str, Any]:
    fields = {k: v for k, v in fleet.items() if k != "rate_factor"}
    spec = FleetSpec(duration_s=duration, rate=rate * fleet["rate_factor"], **fields)
    incs = incidents(spec)
    files = write(spec, incs, work / str(spec.seed))
    assert files.events is not None
    result = Replayer().run([open_source(files.events)])
    if alerts_out is not None:
        alerts_out.mkdir(parents=True, exist_ok=True)
        lines = "".join(a.model_dump_json() + "\n" for a in result.alerts)
        (alerts_out / f"alerts_{spec.seed}.jsonl").write_text(lines)
    summary = summarize(
        result.alerts, load_labels(files.labels), n_series=result.n_series, span_s=result.span_s
    )
    summary["rows_per_s"] = result.n_rows / result.elapsed_s
    # What a person would receive: the notifier's stages over these alerts (event time).
    summary["notifications"] = notifications(result.alerts, len(incs))
    return summary


def combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    firing = sum(p["firing_alerts"] for p in parts)
    matched = sum(p["matched_alerts"] for p in parts)
    results = [r for p in parts for r in p["incident_results"]]
    delays = [r["delay_s"] for r in results if r["detected"]]
    series_hours = sum(p["series"] * p["span_s"] / 3600.0 for p in parts)
    per_kind: dict[str, Any] = {}
    for kind in sorted({r["kind"] for r in results}):
        mine = [r for r in results if r["kind"] == kind]
        d = [r["delay_s"] for r in mine if r["detected"]]
        per_kind[kind] = {
            "incidents": len(mine),
            "recall": len(d) / len(mine),
            "median_delay_s": float(np.median(d)) if d else None,
            "detected_by": sorted({x for r in mine for x in r["detectors"]}),
            "recall_by_detector": {
                det: sum(det in r["detectors"] for r in mine) / len(mine)
                for det in sorted({x for r in mine for x in r["detectors"]})
            },
        }
    per_detector: dict[str, dict[str, int]] = {}
    for p in parts:
        for det, v in p["per_detector"].items():
            agg = per_detector.setdefault(det, {"firing": 0, "matched": 0})
            agg["firing"] += v["firing"]
            agg["matched"] += v["matched"]
    overall = {
        "incidents": len(results),
        "recall": len(delays) / len(results) if results else None,
        "precision": matched / firing if firing else None,
        "median_delay_s": float(np.median(delays)) if delays else None,
        "false_alerts_per_100_series_hours": 100 * (firing - matched) / series_hours
        if series_hours
        else None,
        "firing_alerts": firing,
        "false_alerts": firing - matched,
        "notifications": sum(p["notifications"]["pages"] for p in parts),
        "notifications_per_incident": (
            sum(p["notifications"]["pages"] for p in parts) / len(results) if results else None
        ),
        "held_by_inhibition": sum(p["notifications"]["held_by_inhibition"] for p in parts),
        # Fired and resolved between two looks of their group: told as resolved beside an
        # open incident, or to nobody (transient); every firing alert is in one count.
        "told_only_resolved": sum(p["notifications"]["told_only_resolved"] for p in parts),
        "held_as_transient": sum(p["notifications"]["held_as_transient"] for p in parts),
    }
    passed = {
        "recall": (overall["recall"] or 0) >= TARGETS["recall"],
        "precision": (overall["precision"] or 0) >= TARGETS["precision"],
        "median_delay_s": overall["median_delay_s"] is not None
        and overall["median_delay_s"] <= TARGETS["median_delay_s"],
        "false_alerts_per_100_series_hours": (overall["false_alerts_per_100_series_hours"] or 0)
        <= TARGETS["false_alerts_per_100_series_hours"],
    }
    return {
        "overall": overall,
        "targets": TARGETS,
        "passed": passed,
        "per_kind": per_kind,
        "per_detector": per_detector,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=float, default=2400.0, help="event seconds per fleet")
    ap.add_argument("--rate", type=float, default=100.0, help="inference events/s (base)")
    ap.add_argument("--alerts-out", type=Path, default=None, help="write each fleet's alerts")
    args = ap.parse_args(argv)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmwatch-quality-") as tmp:
        parts = [run_fleet(f, args.duration, args.rate, Path(tmp), args.alerts_out) for f in FLEETS]
    out = combine(parts)
    out["fleets"] = [
        {
            "seed": f["seed"],
            "recall": p["recall"],
            "precision": p["precision"],
            "rows_per_s": round(p["rows_per_s"]),
        }
        for f, p in zip(FLEETS, parts, strict=True)
    ]
    # The simulator resamples the real traces beside the checkout when they are there and
    # lognormal fits of them otherwise (a clean clone, CI): the fleets differ, so the
    # figures are only comparable between runs on the same source.
    out["simulator_reference"] = "trace files" if load_reference().from_files else "fits"
    out["wall_s"] = round(time.perf_counter() - began, 1)
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
