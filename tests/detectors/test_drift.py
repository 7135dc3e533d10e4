"""drift: windowed aggregates per (model, version), River confirms, effect size scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from detectors.base import Finding
from detectors.drift import DriftDetector
from schemas.columns import FINISH_CODES, InferenceColumns
from tests.detectors.cases import inference_columns, obj

T0 = 1.7e9


def stream(
    start_min: int,
    end_min: int,
    *,
    completion_scale: float = 1.0,
    truncation: float = 0.03,
    refusal: float = 0.02,
    version: str = "v1",
    seed: int = 0,
    per_s: float = 2.0,
) -> InferenceColumns:
    rng = np.random.default_rng(seed)
    n = int((end_min - start_min) * 60 * per_s)
    ts = T0 + np.sort(rng.uniform(start_min * 60, end_min * 60, n))
    finish = np.where(rng.random(n) < truncation, FINISH_CODES["length"], FINISH_CODES["stop"])
    return inference_columns(
        ts,
        model_version=obj(version, n),
        completion_tokens=np.round(rng.gamma(4.0, 50.0, n) * completion_scale),
        prompt_tokens=np.round(rng.gamma(2.0, 300.0, n)),
        finish_reason=finish,
        refusal=(rng.random(n) < refusal).astype(float),
        embedding_norm=rng.normal(12, 1, n),
        feedback_score=rng.normal(0.5, 0.2, n),
    )


def feed(det: DriftDetector, cols: InferenceColumns, size: int = 500) -> list[Finding]:
    out: list[Finding] = []
    for i in range(0, len(cols), size):
        out.extend(det.update(cols.take(slice(i, i + size))).findings)
    return out


def test_stable_stream_has_no_findings() -> None:
    det = DriftDetector()
    assert feed(det, stream(0, 90)) == []


def test_completion_length_drift_is_found_and_explained() -> None:
    det = DriftDetector()
    feed(det, stream(0, 40))
    findings = feed(det, stream(40, 60, completion_scale=2.0, seed=1))
    hits = [f for f in findings if f.anomalous and f.kind == "drift.completion_tokens"]
    assert hits
    f = hits[0]
    assert f.observed is not None and f.expected is not None and f.observed > 1.5 * f.expected
    assert f.upper is not None and f.observed > f.upper
    assert "completion_tokens" in f.explanation and "%" in f.explanation
    assert f.series == {"model": "llama-70b", "model_version": "v1"} == f.scope
    assert f.score > 0.5


def test_truncation_and_refusal_rates_drift() -> None:
    # Batches of a minute: Page-Hinkley at the budget's threshold (13.1) confirms this
    # shift in its 12th window, and a confirmation holds for hold_windows (5) windows, so
    # a 4-minute batch (500 rows) could end past the hold.
    det = DriftDetector()
    feed(det, stream(0, 40), size=120)
    findings = feed(det, stream(40, 60, truncation=0.4, refusal=0.4, seed=1), size=120)
    kinds = {f.kind for f in findings if f.anomalous}
    assert {"drift.truncation_rate", "drift.refusal_rate"} <= kinds
    assert "drift.completion_tokens" not in kinds


def test_recovery_is_reported_once() -> None:
    det = DriftDetector()
    feed(det, stream(0, 40))
    assert any(f.anomalous for f in feed(det, stream(40, 55, completion_scale=2.5, seed=1)))
    after = feed(det, stream(55, 80, seed=2))
    rec = [f for f in after if not f.anomalous and f.kind == "drift.completion_tokens"]
    assert len(rec) == 1 and rec[0].severity == "info"


@pytest.mark.parametrize("method", ["adwin", "kswin", "page_hinkley"])
def test_every_river_method_confirms_a_large_shift(method: str) -> None:
    det = DriftDetector(method=method)
    feed(det, stream(0, 30))
    findings = feed(det, stream(30, 70, completion_scale=3.0, seed=1))
    assert any(f.anomalous and f.kind == "drift.completion_tokens" for f in findings)


def test_river_is_fed_once_per_window_not_per_event() -> None:
    det = DriftDetector(window_s=60)
    cols = stream(0, 30, per_s=10)  # 18,000 events
    feed(det, cols)
    windows = np.unique(np.floor(cols.ts / 60)).size
    # Every metric has seen one value per closed window; the last window is still open.
    assert det._view(0).closed.tolist() == [windows - 1] * 6


def test_series_are_separate_per_version() -> None:
    det = DriftDetector()
    both = InferenceColumns.concat([stream(0, 40, version="v1"), stream(0, 40, version="v2")])
    feed(det, both.take(np.argsort(both.ts, kind="stable")))
    later = InferenceColumns.concat(
        [
            stream(40, 60, version="v1", seed=3),
            stream(40, 60, version="v2", completion_scale=2.5, seed=4),
        ]
    )
    findings = feed(det, later.take(np.argsort(later.ts, kind="stable")))
    assert {f.series["model_version"] for f in findings if f.anomalous} == {"v2"}


def test_scores_rise_with_the_shift() -> None:
    det = DriftDetector()
    base = np.concatenate([det.update(b).scores for b in [stream(0, 40)]])
    shifted = det.update(stream(40, 50, completion_scale=2.0, seed=1)).scores
    assert np.median(shifted) > 0.5 > np.percentile(base, 95)


def test_bad_method_names_the_field() -> None:
    with pytest.raises(ValidationError, match="method"):
        DriftDetector(method="cusum")


def test_a_large_certain_shift_needs_no_multi_window_confirmation() -> None:
    """Prompts tripling for one minute: River's confirmation would take several windows;
    the window mean, dozens of standard errors off, is enough on its own."""
    prompt_shift = stream(20, 21, per_s=4.0, seed=2)
    prompt_shift.prompt_tokens[:] *= 3.0
    det = DriftDetector()
    feed(det, stream(0, 20, per_s=4.0))
    fired = [f for f in feed(det, prompt_shift, size=40) if f.anomalous]
    assert any(f.kind == "drift.prompt_tokens" for f in fired)
    river_only = DriftDetector(confirm_z=1e9)
    feed(river_only, stream(0, 20, per_s=4.0))
    assert not [f for f in feed(river_only, prompt_shift, size=40) if f.anomalous]


def test_in_place_page_hinkley_flags_exactly_where_river_does() -> None:
    from river import drift as river_drift

    from detectors.drift import _ROWS, DriftConfig, _ph_reset, _ph_update

    cfg = DriftConfig()
    rng = np.random.default_rng(4)
    # Calm, a shift up, calm, a shift down: several detections and resets.
    xs = np.concatenate([rng.normal(0, 1, 80), rng.normal(6, 1, 40), rng.normal(-5, 2, 60)])
    river = river_drift.PageHinkley(
        min_instances=cfg.warmup_windows, delta=0.5, threshold=8.0, mode="both"
    )
    st = np.zeros((_ROWS, 1))
    _ph_reset(st, slice(None))
    flags = []
    for x in xs.tolist():
        river.update(x)  # type: ignore[no-untyped-call]  # river leaves update unannotated
        mine = _ph_update(st, 0, x, cfg, 8.0)
        assert mine == river.drift_detected
        flags.append(mine)
    assert sum(flags) >= 2


def _two_versions(start_min: int, end_min: int, scale: float = 1.0) -> InferenceColumns:
    both = InferenceColumns.concat(
        [
            stream(start_min, end_min, version="v1", completion_scale=scale),
            stream(start_min, end_min, version="v2", seed=3),
        ]
    )
    return both.take(np.argsort(both.ts, kind="stable"))


def test_snapshot_from_before_the_stacked_state_restores() -> None:
    # Written by the detector that kept one _Series object per series (git 2e63970),
    # after feeding it _two_versions(0, 30).
    data = (Path(__file__).parent / "snapshots" / "drift_before_stacking.snapshot").read_bytes()
    restored = DriftDetector.restore(data)
    same = DriftDetector()
    feed(same, _two_versions(0, 30))
    # Equal up to summation order (sums are added per window run since).
    assert np.allclose(restored.st.table[:2], same.st.table[:2], rtol=1e-12, equal_nan=True)
    assert restored.st.window[:2].tolist() == same.st.window[:2].tolist()
    later = _two_versions(30, 60, scale=3.0)
    got, want = feed(restored, later), feed(same, later)
    assert [f.explanation for f in got] == [f.explanation for f in want]
    assert any(f.anomalous and f.series["model_version"] == "v1" for f in got)


@pytest.mark.parametrize("method", ["page_hinkley", "adwin"])
def test_batched_open_windows_match_one_series_at_a_time(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many versions, a shift in some of them, batches that cross window boundaries and
    # carry late rows: the batched path must give the very same floats and findings.
    parts = [stream(0, 20, version=f"v{i}", seed=i) for i in range(12)]
    parts += [
        stream(20, 40, version=f"v{i}", seed=i + 50, completion_scale=3.0 if i % 4 == 0 else 1.0)
        for i in range(12)
    ]
    both = InferenceColumns.concat(parts)
    cols = both.take(np.argsort(both.ts, kind="stable"))
    # 40 rows from minute 10 arrive late, in a batch of minute ~20.
    late = stream(10, 12, version="v1", seed=99).take(slice(0, 40))
    head, tail = cols.take(slice(0, 30000)), cols.take(slice(30000, None))
    cols = InferenceColumns.concat([head, late, tail])

    def run(batched: bool) -> tuple[DriftDetector, list[Finding], list[np.ndarray]]:
        monkeypatch.setattr(DriftDetector, "_batched", batched)
        det = DriftDetector(method=method)
        found: list[Finding] = []
        scores = []
        for i in range(0, len(cols), 700):
            out = det.update(cols.take(slice(i, i + 700)))
            found.extend(out.findings)
            scores.append(out.scores)
        return det, found, scores

    fast, f_fast, s_fast = run(True)
    slow, f_slow, s_slow = run(False)
    assert np.array_equal(fast.st.table, slow.st.table, equal_nan=True)
    assert fast.st.window.tolist() == slow.st.window.tolist()
    assert all(np.array_equal(a, b) for a, b in zip(s_fast, s_slow, strict=True))
    assert [(f.explanation, f.ts, f.anomalous) for f in f_fast] == [
        (f.explanation, f.ts, f.anomalous) for f in f_slow
    ]
    assert any(f.anomalous for f in f_fast)
