"""How far apart the rows of a CSV numbered 1, 2, 3, ... are: a daily cycle in the values
says (24 rows a day: hourly); without one, 5 minutes; told, as told."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from stream.replay.labelled import load_folder, replay_series
from stream.replay.readers import CsvSource
from stream.replay.row_interval import F64, daily_rows, row_scale

DAY_S = 86400.0


def _daily(rows_a_day: int, days: float, seed: int, shape: str = "sine") -> F64:
    """A day/night cycle of ``rows_a_day`` rows with noise, a trend and a few spikes."""
    rng = np.random.default_rng(seed)
    i = np.arange(int(days * rows_a_day))
    phase = 2 * np.pi * i / rows_a_day
    day = np.sin(phase) if shape == "sine" else np.where(np.sin(phase) > 0, 1.0, -1.0)
    v: F64 = 100 + 30 * day + 0.01 * i + rng.normal(0, 8, i.size)
    v[rng.integers(0, i.size, 5)] += 400  # spikes must not hide the cycle
    return v


@pytest.mark.parametrize(
    ("rows_a_day", "days", "shape"),
    [(24, 60, "sine"), (24, 60, "square"), (96, 14, "sine"), (144, 14, "sine"), (288, 14, "sine"),
     (1440, 5, "sine")],
)  # fmt: skip
def test_a_daily_cycle_gives_the_rows_a_day(rows_a_day: int, days: float, shape: str) -> None:
    for seed in range(3):
        assert daily_rows(_daily(rows_a_day, days, seed, shape)) == rows_a_day


def _cron(seed: int) -> np.ndarray:
    """Five-minute CPU with a job every 2 hours (24 rows) that runs 20 minutes."""
    rng = np.random.default_rng(seed)
    v = rng.normal(20, 2, 4032)
    v[(np.arange(v.size) % 24) < 4] += 30
    return v


def _ar1(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = np.zeros(4000)
    for k in range(1, v.size):
        v[k] = 0.98 * v[k - 1] + rng.normal()
    return v


@pytest.mark.parametrize(
    "make",
    [
        lambda s: np.random.default_rng(s).normal(0, 1, 3000),  # noise
        lambda s: np.cumsum(np.random.default_rng(s).normal(0, 1, 3000)),  # a random walk
        _ar1,
        lambda s: np.random.default_rng(s).poisson(2.0, 3000).astype(float),  # low counts
        _cron,  # a sub-daily job: not out of phase an hour later, so not day and night
        lambda s: np.full(3000, 7.0),  # constant
        lambda s: np.arange(40, dtype=float),  # too short to show three cycles
    ],
)
def test_no_daily_cycle_gives_none(make: Callable[[int], np.ndarray]) -> None:
    for seed in range(3):
        assert daily_rows(make(seed)) is None


def test_a_day_of_two_rushes_is_no_twelve_hour_day() -> None:
    # Half-hourly rows (48 a day) with a morning and an evening rush: they repeat every
    # 24 rows after a fashion, and 3 days (144 rows) repeat, with a day and a half out of
    # phase. Neither is the day; and as rows 12 hours apart are not out of phase, no
    # cycle is claimed (the 5-minute default, as before).
    i = np.arange(48 * 70)
    h = (i % 48) / 2.0
    v = 90 + 140 * np.exp(-((h - 8.5) ** 2) / 3) + 120 * np.exp(-((h - 19) ** 2) / 5)
    v = v * np.random.default_rng(1).lognormal(0, 0.06, i.size)
    assert daily_rows(v) is None


def test_row_scale_is_told_or_read_from_the_values() -> None:
    values = _daily(24, 60, 0)
    rows: F64 = 1.0 + np.arange(values.size, dtype=np.float64)
    assert row_scale(rows, values, None) == (3600.0, "a daily cycle every 24 rows")
    assert row_scale(rows, values, 1.0) == (1.0, "as told")
    noise = np.random.default_rng(0).normal(0, 1, values.size)
    assert row_scale(rows, noise, None) == (300.0, "no daily cycle in the values")
    assert row_scale(1.7e9 + 3600 * rows, values, None) == (None, "")  # epoch time


def test_a_numbered_csv_with_an_hourly_day_replays_an_hour_a_row(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    values = _daily(24, 60, 2)
    path = tmp_path / "hourly.csv"
    body = "".join(f"{i},{x:.3f}\n" for i, x in enumerate(values, 1))
    path.write_text("timestamp,value\n" + body)
    with caplog.at_level(logging.WARNING, logger="llmwatch.replay"):
        source = CsvSource(path)
        list(source.chunks([]))
    assert source.table.ts.tolist() == [3600.0 * i for i in range(1, values.size + 1)]
    (warning,) = caplog.records
    assert "one row every 3600s (a daily cycle every 24 rows" in warning.getMessage()


def test_labelled_windows_move_with_the_interval_read(tmp_path: Path) -> None:
    values = _daily(24, 60, 3)
    lab = np.zeros(values.size, dtype=int)
    lab[1000:1005] = 1
    rows = enumerate(zip(values, lab, strict=True), 1)
    body = "".join(f"{i},{x:.3f},{y}\n" for i, (x, y) in rows)
    (tmp_path / "s.csv").write_text("timestamp,value,is_anomaly\n" + body)
    (series,) = load_folder(tmp_path)
    assert series.windows == ((1001.0 * 3600, 1005.0 * 3600),)
    # The replay reads the same interval from the values: rows and windows line up.
    assert replay_series(series).ts.tolist() == [3600.0 * i for i in range(1, values.size + 1)]
