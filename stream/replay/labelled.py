"""Labelled CSV series: load a folder of them, replay each, and score it as NAB does.

A folder holds ``timestamp,value`` CSVs plus ``windows.json`` (``<relative path>`` ->
``[[start, end], ...]``, the Numenta Anomaly Benchmark layout), or ``timestamp,value,
label`` CSVs where each run of label 1 is one incident window.

Scoring follows NAB's published "standard" profile (Lavin & Ahmad 2015; the
``sweeper`` of the NAB repository), implemented here from that description:

* the first 15% of each file's rows (at most 750) are probation: never scored;
* a detection inside a window earns ``scaled_sigmoid(-(right - i + 1) / width)``,
  normalised so the window's first row earns A_tp = 1 and its last about 0; only the
  window's best (earliest) detection counts;
* a window without a detection costs A_fn = -1;
* a detection outside every window costs A_fp = -0.11, scaled by
  ``scaled_sigmoid(distance past the previous window / its width)`` (full cost
  before the first window or far from one, less just after a window ends);
* scores add up over files; ``100 * (raw - null) / (perfect - null)`` is the normalised
  score, where the null detector never fires and the perfect one fires at each
  window's first scorable row.

Two kinds of detection are scored: per-row scores at a threshold (every row at or above
it is a detection, as in NAB), and alert onsets (the first row at or after each firing
alert's ``starts_at``: what pages a person).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stream.config import LlmwatchConfig

from .readers import LABEL_NAMES, CsvSource, floats, header_columns, pick_column
from .row_interval import row_scale
from .runner import Replayer
from .scoring import firing_alerts
from .timeparse import parse_timestamp, parse_timestamps

A_TP, A_FP, A_FN = 1.0, 0.11, 1.0
PROBATION_FRACTION = 0.15
WEEK_S = 7 * 86400.0

F64 = npt.NDArray[np.float64]


def scaled_sigmoid(x: F64) -> F64:
    out: F64 = 2.0 / (1.0 + np.exp(5.0 * np.clip(x, -50, 50))) - 1.0
    return np.where(x >= 3.0, -1.0, out)


_MAX_TP = float(scaled_sigmoid(np.array([-1.0]))[0])


@dataclass(frozen=True)
class LabelledSeries:
    path: Path
    key: str  # path relative to the folder, "/"-separated
    windows: tuple[tuple[float, float], ...]  # epoch seconds, inclusive
    row_interval_s: float | None = None  # told seconds a row where timestamps are row numbers

    @property
    def folder(self) -> str:
        return self.key.split("/")[0] if "/" in self.key else "."


def _read_columns(path: Path) -> tuple[F64, F64, npt.NDArray[np.bool_] | None]:
    """A labelled CSV's timestamps and values, sorted by time, and its labels (None: no
    label column)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r]
    if not rows:
        return np.zeros(0), np.zeros(0), None
    col = pick_column(rows[0], LABEL_NAMES)
    ts_col, val_col, _ = header_columns(rows[0], str(path))
    body = [r for r in rows[1:] if len(r) > max(col or 0, ts_col, val_col)]
    ts, _ = parse_timestamps([r[ts_col] for r in body])
    values = floats([r[val_col] for r in body])
    order = np.argsort(ts, kind="stable")
    if col is None:
        return ts[order], values[order], None
    lab = np.array([r[col].strip() in ("1", "1.0", "true", "True") for r in body], dtype=bool)
    return ts[order], values[order], lab[order]


def _label_runs(ts: F64, lab: npt.NDArray[np.bool_]) -> tuple[tuple[float, float], ...]:
    """Runs of label 1, as (first, last) timestamps."""
    edges = np.diff(np.r_[0, lab.astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return tuple((float(ts[a]), float(ts[b])) for a, b in zip(starts, ends, strict=True))


def load_folder(root: Path, row_interval_s: float | None = None) -> list[LabelledSeries]:
    """Every CSV under ``root`` with its windows (``windows.json``, else a label column).
    A file whose timestamps are row numbers replays ``row_interval_s`` apart a row (None:
    as its values' daily cycle says, ``row_interval.row_scale``), and its windows are
    moved to the same times."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    table: dict[str, list[list[str]]] | None = None
    if (root / "windows.json").exists():
        table = json.loads((root / "windows.json").read_text(encoding="utf-8"))
    out = []
    for path in sorted(root.rglob("*.csv")):
        key = path.relative_to(root).as_posix()
        ts, values, lab = _read_columns(path)
        if table is not None:
            if key not in table:
                raise ValueError(f"{path}: not in {root / 'windows.json'}")
            wins = tuple((parse_timestamp(a), parse_timestamp(b)) for a, b in table[key])
        elif lab is None:
            raise ValueError(f"{path}: no windows.json in {root} and no label column")
        else:
            wins = _label_runs(ts, lab)
        ok = np.isfinite(ts)
        # The replay reads the same interval from the same values (CsvSource).
        scale, _ = row_scale(ts[ok], values[ok], row_interval_s)
        wins = tuple((a * (scale or 1.0), b * (scale or 1.0)) for a, b in wins)
        out.append(LabelledSeries(path, key, wins, row_interval_s))
    if not out:
        raise ValueError(f"{root}: no CSV files")
    return out


@dataclass
class SeriesRun:
    """One labelled series replayed: row times and scores (sorted by time), alert onsets."""

    series: LabelledSeries
    ts: F64
    scores: F64
    onsets: F64  # firing alerts' starts_at, epoch seconds
    elapsed_s: float
    # Per firing alert: the width of the range its explanation states, in units of the
    # series' whole range of values (NaN: no range stated).
    stated_ranges: F64 = field(default_factory=lambda: np.zeros(0))


def replay_series(
    series: LabelledSeries, config: LlmwatchConfig | None = None, slice_s: float = 5.0
) -> SeriesRun:
    """The product's CSV replay (``Replayer`` over a ``CsvSource``) of one series."""
    result = Replayer(config, slice_s=slice_s).run([CsvSource(series.path, series.row_interval_s)])
    table = result.tables[0]
    ok = table.ok
    ts, scores = table.ts[ok], np.nan_to_num(table.scores[ok])
    order = np.argsort(ts, kind="stable")
    firing = firing_alerts(result.alerts)
    onsets = np.array(sorted(a.starts_at.timestamp() for a in firing))
    values = table.value[ok]
    extremes = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    widths = [_width(a.bounds.lower, a.bounds.upper, *extremes) for a in firing]
    return SeriesRun(
        series, ts[order], scores[order], onsets, result.elapsed_s, np.array(widths, dtype=float)
    )


def _width(lower: float | None, upper: float | None, least: float, most: float) -> float:
    """A stated range's width in units of the series' own range (``least`` to ``most``);
    a side not stated (a bound below zero on a series never below it) is taken at the
    series' own extreme."""
    span = most - least
    if span <= 0 or (lower is None and upper is None):
        return math.nan
    low = least if lower is None else lower
    high = most if upper is None else upper
    return (high - low) / span


def stated_range_summary(runs: Sequence[SeriesRun]) -> dict[str, Any]:
    """How wide the ranges that firing alerts state are, in series ranges: a range many
    times wider than anything the series did tells the reader nothing."""
    w = np.concatenate([r.stated_ranges for r in runs]) if runs else np.zeros(0)
    stated = w[np.isfinite(w)]
    return {
        "alerts": int(w.size),
        "with_range": int(stated.size),
        "median_width": float(np.median(stated)) if stated.size else None,
        "p90_width": float(np.quantile(stated, 0.9)) if stated.size else None,
        "max_width": float(stated.max()) if stated.size else None,
        "share_wider_than_10x": float(np.mean(stated > 10.0)) if stated.size else None,
    }


@dataclass(frozen=True)
class RowWeights:
    """NAB's value of a detection at each scorable row, and the window it falls in."""

    weight: F64  # > 0 inside a window, <= 0 outside
    window: npt.NDArray[np.int64]  # window index, -1 outside
    scorable: npt.NDArray[np.bool_]
    n_windows: int  # windows with at least one scorable row


def row_weights(ts: F64, windows: Sequence[tuple[float, float]]) -> RowWeights:
    n = ts.size
    probation = int(min(math.floor(PROBATION_FRACTION * n), PROBATION_FRACTION * 5000))
    idx = np.arange(n)
    win = np.full(n, -1, dtype=np.int64)
    weight = np.full(n, -A_FP, dtype=np.float64)  # before any window: full cost
    bounds = []
    for w, (t1, t2) in enumerate(sorted(windows)):
        left, right = int(np.searchsorted(ts, t1, "left")), int(np.searchsorted(ts, t2, "right"))
        if right > left:
            bounds.append((w, left, right - 1))
    for w, left, right in bounds:
        width = right - left + 1
        rows = slice(left, right + 1)
        win[rows] = w
        weight[rows] = A_TP * scaled_sigmoid(-(right - idx[rows] + 1) / width) / _MAX_TP
        after = idx > right
        dist = (idx - right) / (width - 1) if width > 1 else np.full(n, 2.0)
        weight = np.where(after & (win < 0), scaled_sigmoid(dist) * A_FP, weight)
    scorable = idx >= probation
    n_windows = len({int(w) for w in win[scorable & (win >= 0)].tolist()})
    return RowWeights(weight, win, scorable, n_windows)


def nab_raw(detected: npt.NDArray[np.bool_], rw: RowWeights) -> dict[str, float]:
    """Raw NAB score of one series for a boolean detection per row."""
    use = detected & rw.scorable
    fp_rows = use & (rw.window < 0)
    raw = float(rw.weight[fp_rows].sum())
    tp = 0
    for w in np.unique(rw.window[rw.scorable & (rw.window >= 0)]).tolist():
        hit = use & (rw.window == w)
        if hit.any():
            raw += float(rw.weight[hit].max())
            tp += 1
        else:
            raw -= A_FN
    return {
        "raw": raw,
        "null": -A_FN * rw.n_windows,
        "perfect": A_TP * rw.n_windows,
        "tp": tp,
        "fp": int(fp_rows.sum()),
    }


def normalised(raw: float, null: float, perfect: float) -> float | None:
    return None if perfect == null else 100.0 * (raw - null) / (perfect - null)


def best_threshold(pairs: Sequence[tuple[F64, RowWeights]]) -> tuple[float, float]:
    """NAB's threshold sweep, exact and pooled over series: (threshold, raw score) with the
    highest raw score, over every distinct score value (a row at >= threshold detects)."""
    s_all, w_all, k_all = [], [], []
    n_win = 0
    for scores, rw in pairs:
        m = rw.scorable
        s_all.append(scores[m])
        w_all.append(rw.weight[m])
        k_all.append(np.where(rw.window[m] >= 0, rw.window[m] + n_win, -1))
        n_win += int(rw.window.max()) + 1 if rw.window.size and rw.window.max() >= 0 else 0
    s, w, k = np.concatenate(s_all), np.concatenate(w_all), np.concatenate(k_all)
    order = np.argsort(-s, kind="stable")
    s, w, k = s[order], w[order], k[order]
    best_of = np.full(max(n_win, 1), -A_FN)
    seen = np.zeros(max(n_win, 1), dtype=bool)
    seen[np.unique(k[k >= 0])] = True
    total = -A_FN * float(seen.sum())
    best = (float("inf"), total)  # above every score: nothing detected
    for i in range(s.size):
        if k[i] < 0:
            total += float(w[i])
        elif w[i] > best_of[k[i]]:
            total += float(w[i] - best_of[k[i]])
            best_of[k[i]] = w[i]
        if (i + 1 == s.size or s[i + 1] != s[i]) and total > best[1]:
            best = (float(s[i]), total)
    return best


def onset_rows(ts: F64, onsets: F64) -> npt.NDArray[np.bool_]:
    """Rows that are the first at or after an alert's start (one detection per alert)."""
    out = np.zeros(ts.size, dtype=bool)
    at = np.searchsorted(ts, onsets, "left")
    out[at[at < ts.size]] = True
    return out


def alert_figures(run: SeriesRun) -> dict[str, Any]:
    """Counts behind incident recall, delays and false alerts per series-week."""
    wins = run.series.windows
    inside = np.zeros(run.onsets.size, dtype=bool)
    delays = []
    for t1, t2 in wins:
        hit = (run.onsets >= t1) & (run.onsets <= t2)
        inside |= hit
        if hit.any():
            delays.append(float(run.onsets[hit].min() - t1))
    span = float(run.ts[-1] - run.ts[0]) if run.ts.size > 1 else 0.0
    return {
        "alerts": int(run.onsets.size),
        "false_alerts": int((~inside).sum()),
        "windows": len(wins),
        "detected": len(delays),
        "delays_s": delays,
        "series_weeks": span / WEEK_S,
    }


def score_series(run: SeriesRun, threshold: float = 0.5) -> dict[str, Any]:
    rw = row_weights(run.ts, run.series.windows)
    rows = nab_raw(run.scores >= threshold, rw)
    onset = nab_raw(onset_rows(run.ts, run.onsets), rw)
    return {
        "key": run.series.key,
        "folder": run.series.folder,
        "rows": int(run.ts.size),
        **alert_figures(run),
        "nab_onset": onset,
        "nab_rows_at_0_5": rows,
        "rows_per_s": run.ts.size / run.elapsed_s if run.elapsed_s > 0 else None,
    }


def _sum(items: Sequence[dict[str, Any]], part: str) -> dict[str, float]:
    keys = ("raw", "null", "perfect", "tp", "fp")
    return {k: float(sum(i[part][k] for i in items)) for k in keys}


def summarise(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pooled figures over scored series (a folder, or all of them)."""
    onset, rows = _sum(items, "nab_onset"), _sum(items, "nab_rows_at_0_5")
    labelled = [i for i in items if i["windows"]]
    clean = [i for i in items if not i["windows"]]

    def per_week(group: Sequence[dict[str, Any]]) -> float | None:
        weeks = sum(i["series_weeks"] for i in group)
        return sum(i["false_alerts"] for i in group) / weeks if weeks > 0 else None

    delays = [d for i in items for d in i["delays_s"]]
    windows = sum(i["windows"] for i in items)
    return {
        "series": len(items),
        "windows": windows,
        "nab_onset": normalised(onset["raw"], onset["null"], onset["perfect"]),
        "nab_rows_at_0_5": normalised(rows["raw"], rows["null"], rows["perfect"]),
        "raw": {"onset": onset, "rows_at_0_5": rows},
        "alerts": sum(i["alerts"] for i in items),
        "false_alerts": sum(i["false_alerts"] for i in items),
        "false_alerts_per_series_week": {
            "outside_windows": per_week(labelled),
            "series_without_anomalies": per_week(clean),
            "overall": per_week(items),
        },
        "incident_recall": sum(i["detected"] for i in items) / windows if windows else None,
        "median_delay_s": float(np.median(delays)) if delays else None,
    }


def evaluate_runs(runs: Sequence[SeriesRun]) -> dict[str, Any]:
    """Every figure, per series, per folder and overall; per-row scores also at the best
    pooled threshold (chosen over all series, as NAB's optimiser does)."""
    items = [score_series(r) for r in runs]
    pairs = [(r.scores, row_weights(r.ts, r.series.windows)) for r in runs]
    thr, _ = best_threshold(pairs)
    best_items = [nab_raw(s >= thr, rw) for s, rw in pairs]
    folders = sorted({i["folder"] for i in items})
    out: dict[str, Any] = {"overall": summarise(items), "per_folder": {}}
    out["overall"]["best_threshold"] = thr
    out["overall"]["stated_range"] = stated_range_summary(runs)
    for group in [None, *folders]:
        idx = [j for j, i in enumerate(items) if group is None or i["folder"] == group]
        tot = {k: sum(best_items[j][k] for j in idx) for k in ("raw", "null", "perfect")}
        target = out["overall"] if group is None else out["per_folder"].setdefault(group, {})
        if group is not None:
            target.update(summarise([items[j] for j in idx]))
        target["nab_rows_best"] = normalised(tot["raw"], tot["null"], tot["perfect"])
    out["per_series"] = [{k: v for k, v in i.items() if k != "delays_s"} for i in items]
    return out
