"""Pure helpers of the benchmark suite: output parsing, matching, report rendering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import _harness as h
from benchmarks.detection_latency import first_alert
from benchmarks.memory import metric_batch, series_batch
from benchmarks.report import HAND_MARK, render, why_not
from benchmarks.run_all import _write, first_json


def test_first_json_skips_log_lines_and_trailing_table() -> None:
    text = 'warming up\n{"a": {"b": [1, 2]}, "c": "x"}\nname   1,000 ev/s\n'
    assert first_json(text) == {"a": {"b": [1, 2]}, "c": "x"}
    with pytest.raises(ValueError, match="no JSON"):
        first_json("only a table\n")


def test_metric_sum_adds_every_labelled_sample_of_that_name_only() -> None:
    text = (
        "# HELP llmwatch_events_in_total x\n"
        'llmwatch_events_in_total{topic="a"} 10.0\n'
        'llmwatch_events_in_total{topic="b"} 5.0\n'
        "llmwatch_events_in_created 1.7e9\n"
        'llmwatch_events_in_total_other{topic="a"} 99.0\n'
    )
    assert h.metric_sum(text, "llmwatch_events_in_total") == 15.0


def test_first_alert_needs_firing_matching_labels_after_the_mark() -> None:
    def alert(status: str, det: str, gw: str, starts: str) -> dict[str, Any]:
        labels = {"gateway": gw, "model": "m"}
        return {"status": status, "detector": det, "labels": labels, "starts_at": starts}

    seen: list[tuple[float, dict[str, Any]]] = [
        (1.0, alert("firing", "e", "g", "1970-01-01T00:00:00.5Z")),
        (3.0, alert("resolved", "e", "g", "1970-01-01T00:00:00.5Z")),
        (4.0, alert("firing", "e", "x", "1970-01-01T00:00:03Z")),
        (5.0, alert("firing", "l", "g", "1970-01-01T00:00:04.25+00:00")),
    ]
    assert first_alert(seen, {"gateway": "g", "model": "m"}, after=2.0) == (5.0, "l", 4.25)
    assert first_alert(seen, {"gateway": "g", "model": "m"}, after=0.0) == (1.0, "e", 0.5)
    assert first_alert(seen, {"gateway": "z"}, after=0.0) is None


def test_series_batch_gives_each_series_distinct_labels_and_repeats() -> None:
    b = series_batch(first=100, count=5, t0=10.0, repeat=3)
    assert len(b) == 15
    keys = set(zip(b.gateway, b.model, b.model_version, b.host, strict=True))
    assert len(keys) == 5
    assert sorted(set(b.ts.tolist())) == [10.0, 11.0, 12.0]


def test_metric_batch_gives_each_series_one_row_at_that_time() -> None:
    b = metric_batch(first=7, count=4, t=300.0)
    assert len(b) == 4 and len(set(b.series.tolist())) == 4
    assert b.ts.tolist() == [300.0] * 4 and np.isfinite(b.value).all()
    assert metric_batch(first=7, count=4, t=600.0).series.tolist() == b.series.tolist()


def test_render_lists_the_metric_series_memory_rows_and_their_errors() -> None:
    result = {
        "sizes": [],
        "metric_series": [
            {"interval_s": 15.0, "rss_bytes_per_series": 2227.4,
             "series_detector_bytes_per_series": 1632.0},
            {"interval_s": 300.0, "error": "did not finish in 300 s"},
        ],
    }  # fmt: skip
    machine = {"cpu": "c", "cores": 2, "python": "3", "platform": "p", "load_avg_1m_at_start": 0}
    memory = {"command": "m", "seconds": 1, "result": result}
    run = {"date": "d", "total_s": 1.0, "quick": False, "machine": machine,
           "benchmarks": {"memory": memory}}  # fmt: skip
    rows = {line.split("|")[1].strip(): line for line in render(run).splitlines() if "|" in line}
    fast = rows["memory RSS/series, metric series every 15 s"]
    assert "2,227 B (series detector state 1,632 B)" in fast
    assert "error: did not finish" in rows["memory RSS/series, metric series every 300 s"]


def test_render_marks_targets_met_missed_and_unmeasured() -> None:
    run = {
        "date": "2026-01-01T00:00:00+00:00",
        "total_s": 1.0,
        "quick": False,
        "machine": {
            "cpu": "cpu",
            "cores": 2,
            "python": "3.11",
            "platform": "linux",
            "load_avg_1m_at_start": 1.0,
        },
        "benchmarks": {
            "kernels": {
                "command": "k",
                "seconds": 1,
                "result": {"kernels": {"ewma_latency_baseline": {"numba_batch_65536": 3e7}}},
            },
            "service_throughput": {
                "command": "s",
                "seconds": 1,
                "result": {
                    "llmwatch": {"events_per_s": 5000},
                    "llmwatch_vs_naive": 1.2,
                    "llmwatch_vs_ceiling": 0.5,
                },
            },
            "memory": {"command": "m", "error": "boom"},
        },
    }
    md = render(run)
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    assert rows["Kernel: latency baseline (EWMA) at batch 64k"].endswith("| met |")
    assert "**not met**" in rows["End to end, one worker (embedded broker)"]
    assert rows["End to end vs no-processing ceiling"].endswith("| met |")
    assert "not measured" in rows["Latency detector state per series"]
    assert "`m` (error: boom)" in md


@pytest.mark.parametrize(
    ("source", "label"),
    [
        ("trace files", "Quality: recall (fleets from the trace files)"),
        ("fits", "Quality: recall (fleets from fits)"),
        (None, "Quality: recall"),
    ],
)
def test_render_says_which_fleets_the_quality_figures_came_from(
    source: str | None, label: str
) -> None:
    # The simulator resamples the real traces when they sit beside the checkout and
    # fits of them otherwise (a clean clone): different fleets, different figures.
    result: dict[str, Any] = {"overall": {"recall": 1.0, "precision": 0.99}}
    if source is not None:
        result["simulator_reference"] = source
    run = {
        "date": "2026-01-01T00:00:00+00:00",
        "total_s": 1.0,
        "quick": False,
        "machine": {"cpu": "c", "cores": 2, "python": "3", "platform": "p",
                    "load_avg_1m_at_start": 0.0},
        "benchmarks": {"quality": {"command": "q", "seconds": 1, "result": result}},
    }  # fmt: skip
    rows = {ln.split("|")[1].strip(): ln for ln in render(run).splitlines() if ln.startswith("| ")}
    assert rows[label].endswith("| met |")


def test_a_new_run_keeps_the_hand_measured_section(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    _write(results, "# run 1\n")
    assert results.read_text() == "# run 1\n"  # no section yet: nothing to keep
    results.write_text(f"# run 1\n\n{HAND_MARK}\n\n## Before / after\n| a | b |\n")
    _write(results, "# run 2\n")
    text = results.read_text()
    assert text.startswith("# run 2\n") and "# run 1" not in text
    assert text.endswith(f"{HAND_MARK}\n\n## Before / after\n| a | b |\n")
    _write(results, "# run 3\n")
    assert results.read_text().count(HAND_MARK) == 1


def test_feeder_keeps_lag_bounded(embedded_broker: str) -> None:
    topic = f"bench-feeder-{id(object())}"
    h.create_topics(embedded_broker, [topic])
    values = [b"x"] * 100
    feeder = h.Feeder(embedded_broker, topic, [b"k"] * 100, values, low=30, chunk=20)
    feeder.feed(consumed=0)
    assert feeder.sent == 20
    feeder.feed(consumed=0)
    assert feeder.sent == 40
    feeder.feed(consumed=0)  # lag 40 >= low: holds back
    assert feeder.sent == 40
    feeder.feed(consumed=95)
    assert feeder.sent == 60
    feeder.close()


def test_render_says_why_a_missed_target_is_out_of_reach() -> None:
    b = {
        "service_throughput": {
            "command": "s",
            "result": {
                "meets": {"events_per_s": False},
                "targets": {"events_per_s": 100_000},
                "ceiling": {"events_per_s": 80_000},
                "llmwatch": {"events_per_s": 40_000, "worker": {"events_per_busy_s": 50_000}},
            },
        },
        "service_throughput_kafka09": {
            "command": "k",
            "result": {"ceiling": {"events_per_s": 200_000}},
        },
        "decode_speed": {"command": "d", "result": {"decode_columns_events_per_s": 250_000}},
        "replay_speed": {
            "command": "r",
            "result": {"jsonl": {"meets_target": True}},
        },
    }
    lines = why_not(b)
    assert len(lines) == 1  # replay met its target: nothing to explain
    assert "80,000 ev/s on the embedded broker, below the target" in lines[0]
    # 1e6/100k - 1e6/200k = 5 us of budget; decode 4 us, batches 20 us per event
    assert "leaves 5.0 us" in lines[0] and "4.0 us" in lines[0] and "20.0 us" in lines[0]


def test_budget_calibration_counts_episodes_and_reports_them() -> None:
    from benchmarks.budget_calibration import episodes, onsets, run, young_rows
    from detectors.series import SeriesConfig

    rng = np.random.default_rng(5)
    steady = rng.normal(50.0, 1.0, 3000)
    stepped = steady.copy()
    stepped[2000:] += 40.0  # a real change: it must open an episode, or the count is blind
    assert episodes(stepped, 300.0) >= 1
    assert episodes(steady, 300.0) <= 1  # ~10 days of plain noise: at most one
    out = run(0.25, 1, (300.0,))
    assert {r["family"] for r in out["families"]} >= {"gaussian", "heavy_tailed_t2.5"}
    scored = (504 - 400) * 300.0 / (7 * 86400.0)  # a quarter week less the warm-up
    assert all(r["series_weeks"] == round(scored, 3) for r in out["families"])
    assert all(r["false_alerts"] >= 0 for r in out["families"])
    # The young stretch (rows 288-400 at 5 minutes: a day, then to the warm-up's end) is
    # counted apart: a jump there is a young page, not one of the scored weeks'.
    assert young_rows(SeriesConfig(), 300.0) == (288, 400)
    assert young_rows(SeriesConfig(), 3600.0) == (100, 400)
    jumped = steady[:504].copy()
    jumped[350:] += 60.0
    assert onsets(jumped, 300.0) == [350]
    young = (400 - 288) * 300.0 / (7 * 86400.0)
    assert all(r["young_series_weeks"] == round(young, 3) for r in out["families"])
    md = render(
        {
            "date": "d",
            "total_s": 1,
            "quick": True,
            "machine": {"cpu": "c", "cores": 2, "python": "3", "platform": "p",
                        "load_avg_1m_at_start": 0},
            "benchmarks": {"budget_calibration": {"command": "c", "result": out}},
        }
    )  # fmt: skip
    assert f"| gaussian | 300 s | {round(scored, 3)} |" in md
    assert f"| {round(young, 3)} | {out['families'][0]['young_false_alerts']} |" in md
    assert "Young stretch (before the warm-up ends" in md


def test_weekly_shape_turns_into_and_out_of_its_weekend_without_a_step() -> None:
    # The family's weekend ramps over 20:00-02:00 on Friday and Sunday nights. Read as
    # day 0, Monday's first two hours put the noiseless level back at a weekday's in one
    # row at midnight (127 to 90 at 5 minutes), a step every week that the benchmark
    # then counted as the detector's false alerts (weekly_shape at 15 s: 1.96x).
    from benchmarks.budget_calibration import DAY_S, _weekly_shape

    class _NoNoise(np.random.Generator):
        def __init__(self) -> None:
            super().__init__(np.random.PCG64(0))

        def lognormal(self, *args: object, **kwargs: object) -> np.ndarray:  # type: ignore[override]
            return np.ones(int(args[2]))  # type: ignore[call-overload]

    period = 300.0
    level = _weekly_shape(_NoNoise(), int(14 * DAY_S / period), period)
    # The steepest change in the week, the weekday's morning rush, is under 7 a row.
    assert np.abs(np.diff(level)).max() < 7.0


def test_numbered_probe_gives_as_many_anomalies_as_asked() -> None:
    import argparse

    from benchmarks.numbered_probe import _span, probe

    def runs(label: np.ndarray) -> int:  # labelled incidents: runs of 1
        return int(np.sum(np.diff(np.concatenate(([0], label))) == 1))

    # Anomalies may overlap into one run, so a series can show fewer than it was given.
    few = [runs(probe(s)[1]) for s in range(12)]
    many = [runs(probe(s, count=(8, 20))[1]) for s in range(12)]
    assert all(1 <= k <= 4 for k in few)
    assert all(k <= 20 for k in many) and sum(many) >= 8 * 12 * 0.8
    assert runs(probe(3, anomalies=False)[1]) == 0
    assert _span("8-20") == (8, 20) and _span("3") == (3, 3)
    for bad in ("x", "5-2", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            _span(bad)
