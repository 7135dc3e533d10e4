"""NAB-style scoring of labelled series: null = 0, perfect = 100, costs where NAB puts them;
label-column folders; one real replay of a labelled CSV through the product path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream.replay.labelled import (
    A_FP,
    LabelledSeries,
    SeriesRun,
    best_threshold,
    evaluate_runs,
    load_folder,
    nab_raw,
    normalised,
    onset_rows,
    replay_series,
    row_weights,
)

T0 = 1.4e9


def _series(n: int = 1000, windows: tuple[tuple[int, int], ...] = ((600, 700),)) -> SeriesRun:
    ts = np.asarray(T0 + 300.0 * np.arange(n), dtype=np.float64)
    wins = tuple((float(ts[a]), float(ts[b])) for a, b in windows)
    return SeriesRun(
        LabelledSeries(Path("f/x.csv"), "f/x.csv", wins), ts, np.zeros(n), np.zeros(0), 1.0
    )


def test_null_is_zero_perfect_is_hundred_and_earlier_is_better() -> None:
    run = _series()
    rw = row_weights(run.ts, run.series.windows)
    none = nab_raw(np.zeros(1000, dtype=bool), rw)
    assert normalised(none["raw"], none["null"], none["perfect"]) == 0.0
    first = np.zeros(1000, dtype=bool)
    first[600] = True
    perfect = nab_raw(first, rw)
    assert normalised(perfect["raw"], perfect["null"], perfect["perfect"]) == pytest.approx(100.0)
    late = np.zeros(1000, dtype=bool)
    late[690] = True
    assert 0 < nab_raw(late, rw)["raw"] < perfect["raw"]


def test_false_positive_costs() -> None:
    run = _series()
    rw = row_weights(run.ts, run.series.windows)
    base = nab_raw(np.zeros(1000, dtype=bool), rw)["raw"]
    far = np.zeros(1000, dtype=bool)
    far[300] = True  # before any window: the full A_fp
    assert nab_raw(far, rw)["raw"] - base == pytest.approx(-A_FP)
    near = np.zeros(1000, dtype=bool)
    near[702] = True  # just after the window: a smaller cost
    assert -A_FP < nab_raw(near, rw)["raw"] - base < 0
    probation = np.zeros(1000, dtype=bool)
    probation[10] = True  # the first 15% is never scored
    assert nab_raw(probation, rw)["raw"] == base


def test_best_threshold_and_onsets() -> None:
    run = _series()
    run.scores[650] = 0.9  # in the window
    run.scores[200] = 0.7  # a false positive below it
    thr, raw = best_threshold([(run.scores, row_weights(run.ts, run.series.windows))])
    assert thr == 0.9 and raw > 0
    run.onsets = np.array([run.ts[650] - 10.0, run.ts[900]])
    assert np.flatnonzero(onset_rows(run.ts, run.onsets)).tolist() == [650, 900]
    out = evaluate_runs([run])
    assert out["overall"]["incident_recall"] == 1.0
    assert out["overall"]["false_alerts"] == 1
    assert out["overall"]["median_delay_s"] == pytest.approx(run.ts[650] - 10.0 - run.ts[600])


def test_label_column_folder_replays_through_the_product(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 1500
    ts = T0 + 300.0 * np.arange(n)
    v = rng.normal(10, 1, n)
    v[1200:1210] += 25
    lab = np.zeros(n, dtype=int)
    lab[1195:1230] = 1
    lines = ["timestamp,value,label"] + [
        f"{int(t)},{x:.4f},{y}" for t, x, y in zip(ts, v, lab, strict=True)
    ]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "s.csv").write_text("\n".join(lines) + "\n")
    (series,) = load_folder(tmp_path)
    assert series.windows == ((float(ts[1195]), float(ts[1229])),)
    run = replay_series(series)
    assert run.ts.size == n and run.scores.max() > 0.5
    out = evaluate_runs([run])
    assert out["per_folder"]["a"]["incident_recall"] == 1.0
    assert out["overall"]["nab_onset"] > 50
    # The firing alert's stated range, in units of the series' range (-0.9 to 36.6 here):
    # a +25 spike on N(10, 1) pages well inside what the series did.
    assert run.stated_ranges.size == run.onsets.size >= 1
    stated = out["overall"]["stated_range"]
    assert stated["alerts"] == run.onsets.size and stated["with_range"] >= 1
    assert 0.0 < stated["max_width"] < 1.0


@pytest.mark.parametrize(
    "header", ["timestamp,value,is_anomaly", "timestamps,value,anomaly,changepoint,trend"]
)
def test_label_columns_are_found_by_the_names_public_sets_use(tmp_path: Path, header: str) -> None:
    extra = ",0" * (header.count(",") - 2)
    lab = [0] * 10 + [1, 1] + [0] * 8
    rows = [f"{int(T0) + 3600 * i},{i},{y}{extra}" for i, y in enumerate(lab)]
    (tmp_path / "s.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    (series,) = load_folder(tmp_path)
    assert series.windows == ((T0 + 36000.0, T0 + 39600.0),)


def test_row_numbered_labelled_series_score_as_their_dated_copy(tmp_path: Path) -> None:
    # The same series twice: dated every 5 minutes, and numbered 1, 2, 3, ... as some
    # public anomaly sets ship them. Rows numbered are read 5 minutes apart and their
    # windows with them, so both score the same (read as seconds, the numbered copy
    # raised no alert: its budget allowed one false alert in 1.2 million rows).
    rng = np.random.default_rng(2)
    n = 1500
    v = rng.normal(10, 1, n)
    v[1200:1210] += 25
    lab = (np.arange(n) >= 1195) & (np.arange(n) < 1230)
    for name, stamps in (("dated", T0 + 300.0 * np.arange(n)), ("rows", 1.0 + np.arange(n))):
        (tmp_path / name).mkdir()
        body = [f"{int(t)},{x:.4f},{int(y)}" for t, x, y in zip(stamps, v, lab, strict=True)]
        (tmp_path / name / "s.csv").write_text("timestamp,value,label\n" + "\n".join(body))
    dated, rows = load_folder(tmp_path)
    assert rows.key == "rows/s.csv" and rows.windows == ((1196.0 * 300, 1230.0 * 300),)
    out = evaluate_runs([replay_series(dated), replay_series(rows)])["per_folder"]
    assert out["rows"]["incident_recall"] == out["dated"]["incident_recall"] == 1.0
    assert out["rows"]["nab_onset"] == pytest.approx(out["dated"]["nab_onset"], abs=1.0)
    assert out["rows"]["nab_onset"] > 50
    (told,) = load_folder(tmp_path / "rows", row_interval_s=1.0)
    assert told.windows == ((1196.0, 1230.0),)
    assert replay_series(told).ts.tolist() == (1.0 + np.arange(n)).tolist()


def test_stated_range_summary_counts_alerts_without_a_range() -> None:
    run = _series()
    run.stated_ranges = np.array([0.5, np.nan, 2.0, 30.0])
    out = evaluate_runs([run])["overall"]["stated_range"]
    assert (out["alerts"], out["with_range"]) == (4, 3)
    assert out["median_width"] == 2.0 and out["max_width"] == 30.0
    assert out["share_wider_than_10x"] == pytest.approx(1 / 3)


def test_tune_on_labelled_series_reports_the_budget_it_achieves(tmp_path: Path) -> None:
    from stream.replay.tune import tune_labelled

    rng = np.random.default_rng(1)
    n = 1200
    ts = T0 + 300.0 * np.arange(n)
    v = rng.normal(50, 2, n)
    v[1000:] += 20
    lab = (np.arange(n) >= 990) & (np.arange(n) < 1030)
    rows = [f"{int(t)},{x:.3f},{int(y)}" for t, x, y in zip(ts, v, lab, strict=True)]
    (tmp_path / "s.csv").write_text("timestamp,value,label\n" + "\n".join(rows) + "\n")
    best, trials = tune_labelled(tmp_path, trials=2, seed=3)
    assert [t["trial"] for t in trials] == [0, 1]
    for t in trials:
        assert t["objective"] == t["nab_onset"]
        assert set(t["false_alerts_per_series_week"]) == {
            "outside_windows",
            "series_without_anomalies",
            "overall",
        }
    assert trials[0]["recall"] == 1.0
    assert best.detectors is not None
