"""feedback: decline of user ratings per (model, version)."""

from __future__ import annotations

import numpy as np
import pytest
from cases import obj
from pydantic import ValidationError

from detectors.base import Finding
from detectors.feedback import FeedbackDetector
from schemas.columns import FeedbackColumns

T0 = 1.7e9


def ratings(
    n: int, mean: float, *, start: float = 0.0, version: str = "v1", seed: int = 0
) -> FeedbackColumns:
    rng = np.random.default_rng(seed)
    ts = T0 + start + np.arange(n) * 5.0
    return FeedbackColumns(
        ts=ts,
        request_id=obj([f"r{seed}-{i}" for i in range(n)], n),
        model=obj("m", n),
        model_version=obj(version, n),
        score=np.clip(rng.normal(mean, 0.3, n), -1, 1),
        label=obj(None, n),
    )


def feed(det: FeedbackDetector, cols: FeedbackColumns, size: int = 100) -> list[Finding]:
    out: list[Finding] = []
    for i in range(0, len(cols), size):
        out.extend(det.update(cols.take(slice(i, i + size))).findings)
    return out


def test_steady_ratings_are_quiet() -> None:
    det = FeedbackDetector()
    assert feed(det, ratings(3000, 0.5)) == []


def test_decline_fires_and_explains() -> None:
    det = FeedbackDetector()
    feed(det, ratings(1000, 0.5))
    findings = feed(det, ratings(200, 0.0, start=5000, seed=1))
    fired = [f for f in findings if f.anomalous]
    assert fired and fired[-1].kind == "feedback.decline"
    f = fired[-1]
    assert f.observed is not None and f.expected is not None
    assert f.observed < f.expected - 0.3
    assert f.lower is not None and f.observed < f.lower
    assert "fell to" in f.explanation and "m v1" in f.explanation
    assert f.scope == {"model": "m", "model_version": "v1"}


def test_improvement_is_not_an_incident() -> None:
    det = FeedbackDetector()
    feed(det, ratings(1000, 0.0))
    assert feed(det, ratings(300, 0.8, start=5000, seed=1)) == []


def test_recovers_once() -> None:
    det = FeedbackDetector()
    feed(det, ratings(1000, 0.5))
    assert any(f.anomalous for f in feed(det, ratings(200, 0.0, start=5000, seed=1)))
    after = feed(det, ratings(300, 0.5, start=6000, seed=2))
    assert [f.anomalous for f in after] == [False]


def test_small_drop_below_min_drop_is_quiet() -> None:
    det = FeedbackDetector(min_drop=0.3)
    feed(det, ratings(1000, 0.5))
    assert not [f for f in feed(det, ratings(300, 0.3, start=5000, seed=1)) if f.anomalous]


def test_warmup_scores_zero() -> None:
    det = FeedbackDetector(warmup=50)
    out = det.update(ratings(40, -0.9))
    assert (out.scores == 0).all() and out.findings == []


def test_fast_must_be_faster_than_slow() -> None:
    with pytest.raises(ValidationError, match="fast_alpha"):
        FeedbackDetector(fast_alpha=0.001, slow_alpha=0.01)
