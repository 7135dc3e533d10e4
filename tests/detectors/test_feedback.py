"""feedback: decline of user ratings per (model, version), a one-sided CUSUM."""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from detectors.base import Finding
from detectors.feedback import FeedbackConfig, FeedbackDetector
from schemas.columns import FeedbackColumns, InferenceColumns
from tests.detectors.cases import obj

T0 = 1.7e9


def ratings(
    n: int, mean: float, *, start: float = 0.0, version: str = "v1", seed: int = 0
) -> FeedbackColumns:
    rng = np.random.default_rng(seed)
    ts = np.asarray(T0 + start + np.arange(n) * 5.0, dtype=np.float64)
    return FeedbackColumns(
        ts=ts,
        request_id=obj([f"r{seed}-{i}" for i in range(n)], n),
        model=obj("m", n),
        model_version=obj(version, n),
        score=np.clip(rng.normal(mean, 0.3, n), -1, 1),
        label=obj(None, n),
    )


STARS = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
HAPPY = np.array([0.05, 0.05, 0.10, 0.30, 0.50])
UNHAPPY = np.array([0.45, 0.25, 0.15, 0.10, 0.05])


def stars(
    n: int,
    bad_share: float,
    *,
    start: float = 0.0,
    seed: int = 0,
    happy: npt.NDArray[np.float64] = HAPPY,
) -> FeedbackColumns:
    """Five-star ratings on [-1, 1], a ``bad_share`` of them from an unhappy mix, 3 s apart."""
    rng = np.random.default_rng(seed)
    mix = (1 - bad_share) * happy + bad_share * UNHAPPY
    cols = ratings(n, 0.0, start=start, seed=seed)
    ts = np.asarray(T0 + start + np.arange(n) * 3.0, dtype=np.float64)
    return dataclasses.replace(cols, ts=ts, score=rng.choice(STARS, size=n, p=mix))


def feed(
    det: FeedbackDetector, cols: FeedbackColumns | InferenceColumns, size: int = 100
) -> list[Finding]:
    out: list[Finding] = []
    for i in range(0, len(cols), size):
        out.extend(det.update(cols.take(slice(i, i + size))).findings)
    return out


def test_steady_ratings_are_quiet() -> None:
    det = FeedbackDetector()
    assert feed(det, ratings(3000, 0.5)) == []


def test_long_steady_five_star_stream_stays_quiet() -> None:
    # Lumpy, skewed ratings: the CUSUM's calibration holds over ~7 days' worth of one
    # series' ratings at a realistic rate, not just for smooth scores.
    det = FeedbackDetector()
    assert [f for f in feed(det, stars(30000, 0.0), size=500) if f.anomalous] == []


def test_short_sparse_decline_is_caught() -> None:
    # 40 ratings (a ~1 minute incident at a 2% feedback rate) from a clearly unhappy
    # mix: each alone says little, their sum is decisive.
    det = FeedbackDetector()
    feed(det, stars(1500, 0.0))
    out = feed(det, stars(40, 0.6, start=5000, seed=1), size=10)
    fired = [f for f in out if f.anomalous]
    assert fired
    assert fired[0].observed is not None and fired[0].expected is not None
    assert fired[0].observed < fired[0].expected - 0.3


def test_a_baseline_learned_in_a_lucky_spell_does_not_page_ordinary_ratings() -> None:
    # The first 300 ratings (the warm-up) come from a happier mix than the version's
    # usual one; the usual ratings that follow must not read as a decline. Judged at a
    # generous budget (25 false alerts a week: the threshold ~9 that a fixed threshold
    # had), where the margin's effect shows; the default budget's is higher still.
    lucky = np.array([0.02, 0.03, 0.07, 0.28, 0.60])
    budget = {"false_alerts_per_series_week": 25.0}

    def pages(margin: float, seed: int) -> bool:
        det = FeedbackDetector(baseline_margin=margin, alert_budget=budget)
        feed(det, stars(300, 0.0, seed=seed + 99, happy=lucky))
        return any(f.anomalous for f in feed(det, stars(2000, 0.0, start=5000, seed=seed + 1)))

    without = sum(pages(0.0, seed) for seed in range(20))
    default = sum(pages(FeedbackConfig().baseline_margin, seed) for seed in range(20))
    assert default <= 3 < 6 <= without


def test_decline_fires_and_explains() -> None:
    det = FeedbackDetector()
    feed(det, ratings(1000, 0.5))
    findings = feed(det, ratings(200, 0.0, start=5000, seed=1))
    fired = [f for f in findings if f.anomalous]
    assert fired and fired[-1].kind == "feedback.decline"
    f = fired[-1]
    assert f.observed is not None and f.expected is not None
    assert f.observed < f.expected - 0.3
    assert "averaged" in f.explanation and "m v1" in f.explanation
    assert f.scope == {"model": "m", "model_version": "v1"}


def test_improvement_is_not_an_incident() -> None:
    det = FeedbackDetector()
    feed(det, ratings(1000, 0.0))
    assert feed(det, ratings(300, 0.8, start=5000, seed=1)) == []


def test_recovers_once() -> None:
    det = FeedbackDetector()
    feed(det, ratings(1000, 0.5))
    assert any(f.anomalous for f in feed(det, ratings(200, 0.0, start=5000, seed=1)))
    after = [f.anomalous for f in feed(det, ratings(400, 0.5, start=6000, seed=2))]
    # Still declining while the evidence drains, then exactly one recovery, last.
    assert after[-1] is False and after.count(False) == 1


def test_small_drop_never_accumulates() -> None:
    # A drop below ~tilt * variance / 2 has negative drift: harmless changes never page.
    det = FeedbackDetector()
    feed(det, ratings(1000, 0.5))
    assert not [f for f in feed(det, ratings(5000, 0.47, start=5000, seed=1)) if f.anomalous]


def test_warmup_scores_zero() -> None:
    det = FeedbackDetector(warmup=50)
    out = det.update(ratings(40, -0.9))
    assert (out.scores == 0).all() and out.findings == []


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValidationError, match="tilt"):
        FeedbackDetector(tilt=0.0)


def test_evidence_and_onset_do_not_depend_on_batching() -> None:
    # Judged at every rating in event time: the scores (the evidence) are the same
    # however rows are batched, and the decline is reported at the rating that crossed.
    cols = FeedbackColumns.concat(
        [
            stars(400, 0.0, seed=3),
            stars(60, 0.9, start=1200, seed=4),
            stars(300, 0.0, start=1400, seed=5),
        ]
    )

    def run(size: int) -> tuple[npt.NDArray[np.float64], float, bool]:
        det = FeedbackDetector()
        scores, found = [], []
        for i in range(0, len(cols), size):
            out = det.update(cols.take(slice(i, i + size)))
            scores.append(out.scores)
            found.extend(out.findings)
        onset = next(f.ts for f in found if f.anomalous)
        return np.concatenate(scores), onset, found[-1].anomalous

    one_by_one = run(1)
    assert one_by_one[2] is False  # fired, then recovered
    for size in (len(cols), 37):
        scores, onset, last = run(size)
        np.testing.assert_allclose(scores, one_by_one[0], rtol=1e-12)
        assert onset == one_by_one[1]
        # One batch holding the whole episode ends firing; its recovery needs a next batch.
        assert last is (size == len(cols))
