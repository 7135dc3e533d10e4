"""The contract every detector passes. Detectors are found automatically; each needs
``tests/detectors/cases/<name>.py`` with ``make_case(seed) -> (batches, labels)``."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import fields
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest

from detectors.base import Detector, DetectorOutput, Finding
from detectors.config import detector_classes
from schemas.columns import (
    Columns,
    FeedbackColumns,
    GpuColumns,
    InferenceColumns,
    MetricColumns,
)

CASES = Path(__file__).parent / "cases"
SEED = 7
CLASSES = detector_classes()


def load_case_module(name: str) -> ModuleType:
    path = CASES / f"{name}.py"
    if not path.exists():
        pytest.fail(f"detector {name!r} has no contract case: add {path} defining make_case(seed)")
    spec = importlib.util.spec_from_file_location(f"_contract_case_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def case(name: str) -> tuple[list[Columns], list[npt.NDArray[np.bool_]]]:
    batches, labels = load_case_module(name).make_case(SEED)
    assert len(batches) == len(labels) >= 2, "a case needs at least two batches"
    for b, lab in zip(batches, labels, strict=True):
        assert CLASSES[name].reads(type(b))
        assert lab.dtype == np.bool_ and lab.shape == (len(b),)
    return batches, labels


def run(det: Detector[Any], batches: list[Columns]) -> list[DetectorOutput]:
    return [det.update(b) for b in batches]


def norm_finding(f: Finding) -> tuple[Any, ...]:
    """A comparable form of a finding (NaN == NaN)."""
    out: list[Any] = []
    for name in f.__dataclass_fields__:
        v = getattr(f, name)
        if isinstance(v, float) and math.isnan(v):
            v = "nan"
        elif isinstance(v, dict):
            v = tuple(sorted(v.items()))
        out.append(v)
    return tuple(out)


def assert_same(a: list[DetectorOutput], b: list[DetectorOutput]) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        np.testing.assert_array_equal(x.scores, y.scores, err_msg=f"batch {i} scores differ")
        assert [norm_finding(f) for f in x.findings] == [norm_finding(f) for f in y.findings], (
            f"batch {i} findings differ"
        )


def assert_valid(out: DetectorOutput, n: int) -> None:
    assert out.scores.shape == (n,)
    assert np.isfinite(out.scores).all()
    assert ((out.scores >= 0) & (out.scores <= 1)).all()
    for f in out.findings:
        assert 0.0 <= f.score <= 1.0 and math.isfinite(f.score)
        assert f.severity in {"critical", "error", "warning", "info"}
        assert f.explanation


def auc(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_]) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties given average ranks."""
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size)
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    pos = int(labels.sum())
    neg = labels.size - pos
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def test_auc_helper() -> None:
    labels = np.array([False, False, True, True])
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert auc(np.array([0.9, 0.8, 0.2, 0.1]), labels) == 0.0
    assert auc(np.array([0.5, 0.5, 0.5, 0.5]), labels) == 0.5


def test_detectors_are_found() -> None:
    assert {"gpu_health", "drift", "feedback", "slo_burn"} <= set(CLASSES)


params = pytest.mark.parametrize("name", sorted(CLASSES))


@params
def test_has_case_and_declares_contract(name: str) -> None:
    cls = CLASSES[name]
    assert issubclass(cls.consumes, Columns)
    cls.Config()  # defaults work with no config file
    case(name)


@params
def test_deterministic(name: str) -> None:
    batches, _ = case(name)
    cls = CLASSES[name]
    assert_same(run(cls(), batches), run(cls(), batches))


@params
def test_snapshot_restore_gives_identical_later_output(name: str) -> None:
    batches, _ = case(name)
    cls = CLASSES[name]
    mid = len(batches) // 2
    det = cls()
    run(det, batches[:mid])
    snap = det.snapshot()
    later = run(det, batches[mid:])
    restored = cls.restore(snap)
    assert_same(later, run(restored, batches[mid:]))


@params
def test_clone_starts_without_state(name: str) -> None:
    batches, _ = case(name)
    cls = CLASSES[name]
    det = cls()
    run(det, batches)
    clone = det.clone()
    assert type(clone) is cls and clone.params() == det.params()
    assert_same(run(clone, batches[:2]), run(cls(), batches[:2]))


@params
def test_input_not_mutated(name: str) -> None:
    batches, _ = case(name)
    before = [{f.name: getattr(b, f.name).copy() for f in fields(b)} for b in batches]
    run(CLASSES[name](), batches)
    for b, cols in zip(batches, before, strict=True):
        for key, old in cols.items():
            new = getattr(b, key)
            assert new.dtype == old.dtype
            if old.dtype.kind == "f":
                np.testing.assert_array_equal(new, old, err_msg=key)
            else:
                assert list(new) == list(old), key


def corrupt(batch: Columns, rng: np.random.Generator) -> Columns:
    """A copy with about 10 % of every float column's cells set to NaN, +inf or -inf."""
    cols: dict[str, Any] = {}
    for f in fields(batch):
        arr = getattr(batch, f.name).copy()
        if arr.dtype.kind == "f" and arr.size:
            hit = rng.random(arr.size) < 0.1
            arr[hit] = rng.choice([np.nan, np.inf, -np.inf], int(hit.sum()))
        cols[f.name] = arr
    return type(batch)(**cols)


@params
def test_nan_inf_and_empty_batches(name: str) -> None:
    batches, _ = case(name)
    cls = CLASSES[name]
    rng = np.random.default_rng(SEED)
    det = cls()
    empty = cls.consumes.empty()
    assert_valid(det.update(empty), 0)
    for i, b in enumerate(batches):
        bad = corrupt(b, rng)
        assert_valid(det.update(bad), len(bad))
        if i == len(batches) // 2:
            assert_valid(det.update(empty), 0)
            all_nan = corrupt(b, np.random.default_rng(0))
            assert_valid(det.update(all_nan), len(all_nan))


@params
def test_auc_above_chance(name: str) -> None:
    batches, labels = case(name)
    outs = run(CLASSES[name](), batches)
    scores = np.concatenate([o.scores for o in outs])
    lab = np.concatenate(labels)
    assert 0 < lab.sum() < lab.size, "a case needs both anomalous and normal rows"
    value = auc(scores, lab)
    assert value > 0.5, f"{name}: ROC AUC {value:.3f}"


def many_series(batch: Columns, copies: int) -> Columns:
    """The batch with every string label suffixed by the row's copy number, so the
    detector sees ``copies`` times as many series (state arrays must grow)."""
    cols: dict[str, Any] = {}
    for f in fields(batch):
        col = getattr(batch, f.name)
        if col.dtype == object and f.name not in {"labels", "request_id"}:
            suffix = np.arange(len(col)) % copies
            col = np.array(
                [
                    v if not isinstance(v, str) else f"{v}#{s}"
                    for v, s in zip(col, suffix, strict=True)
                ],
                dtype=object,
            )
        cols[f.name] = col
    return type(batch)(**cols)


@params
def test_state_grows_with_many_series(name: str) -> None:
    """Hundreds of new series in one batch, then more: capacity growth must hold."""
    batches, _ = case(name)
    det = CLASSES[name]()
    for copies in (300, 700):
        for b in batches[:2]:
            assert_valid(det.update(many_series(b, copies)), len(b))


@params
def test_active_series_counts_what_was_learned(name: str) -> None:
    """``active_series`` (the worker's llmwatch_active_series gauge) sees every series,
    wherever the detector keeps its registries."""
    batches, _ = case(name)
    det = CLASSES[name]()
    assert det.active_series() == 0
    det.update(batches[0])
    few = det.active_series()
    assert few > 0
    det.update(many_series(batches[0], 50))
    assert det.active_series() > few


def ts_of(batch: Columns) -> npt.NDArray[np.float64]:
    """The batch's ``ts`` column: every kind has one, though the Columns base declares none."""
    return cast(InferenceColumns | GpuColumns | MetricColumns | FeedbackColumns, batch).ts


def shifted(batch: Columns, dt: float) -> Columns:
    """The batch ``dt`` seconds later."""
    values = {f.name: getattr(batch, f.name) for f in fields(batch)}
    values["ts"] = ts_of(batch) + dt
    return type(batch)(**values)


@params
def test_idle_series_are_forgotten_after_their_ttl(name: str) -> None:
    """A long-running worker's memory stays bounded by the series that still report:
    series idle past ``series_ttl_s`` are forgotten (the gauge counts only the rest)."""
    batches, _ = case(name)
    ttl = CLASSES[name]().config.series_ttl_s  # type: ignore[attr-defined]
    det = CLASSES[name]()
    det.update(batches[0])
    assert det.active_series() > 0
    span = float(np.nanmax(ts_of(batches[0])) - np.nanmin(ts_of(batches[0])))
    later = many_series(shifted(batches[0], 3 * ttl + span + 1), 1)  # new series only
    det.update(later)
    alone = CLASSES[name]()
    alone.update(later)
    assert det.active_series() == alone.active_series() > 0
