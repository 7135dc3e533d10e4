"""feedback's join: ratings and the version's requests (refusals, truncations) in one
CUSUM per (model, version), its threshold set by the alert budget."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.feedback import FeedbackDetector
from detectors.kernels import evidence as kern
from schemas.columns import FINISH_CODES, InferenceColumns
from stream.engine import Engine
from tests.detectors.cases import inference_columns, split
from tests.detectors.cases.feedback import _ratings
from tests.detectors.test_feedback import feed, ratings

T0 = 1.7e9
SNAPSHOTS = Path(__file__).parent / "snapshots"
F64 = npt.NDArray[np.float64]


def requests(
    seconds: float,
    *,
    rate: float = 10.0,
    refusal: float = 0.015,
    length: float = 0.04,
    start: float = 0.0,
    version: str = "v1",
    seed: int = 0,
) -> InferenceColumns:
    """``rate`` requests a second for ``seconds``, each refused with probability
    ``refusal`` and cut at max_tokens with probability ``length``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    ts = T0 + start + np.arange(n) / rate
    finish = np.where(rng.random(n) < length, FINISH_CODES["length"], FINISH_CODES["stop"])
    refused = (rng.random(n) < refusal).astype(np.float64)
    return inference_columns(
        ts, model="m", model_version=version, refusal=refused, finish_reason=finish
    )


def first_alarm(det: FeedbackDetector, cols: Any, size: int = 50) -> float:
    """Event time of the first anomalous finding (inf when none)."""
    for i in range(0, len(cols), size):
        for f in det.update(cols.take(slice(i, i + size))).findings:
            if f.anomalous:
                return f.ts
    return math.inf


def warmed(**overrides: Any) -> FeedbackDetector:
    det = FeedbackDetector(**overrides)
    feed(det, requests(1200, seed=1), size=500)
    return det


def test_the_engine_routes_requests_and_ratings_to_feedback() -> None:
    eng = Engine()
    assert "feedback" in {d.name for d in eng.detectors_for(requests(1))}
    assert "feedback" in {d.name for d in eng.detectors_for(ratings(2, 0.5))}
    assert FeedbackDetector.reads(InferenceColumns)


def test_a_refusal_rise_alone_with_no_ratings_fires_and_says_so() -> None:
    det = warmed()
    bad = requests(300, refusal=0.06, start=1200, seed=2)
    fired = [f for f in feed(det, bad, size=50) if f.anomalous]
    assert fired
    f = fired[0]
    assert f.ts < T0 + 1200 + 240  # within four minutes at 10 requests a second
    assert "refusals" in f.explanation and "usually 1." in f.explanation
    assert "ratings" not in f.explanation
    assert f.observed is not None and f.expected is not None
    assert f.observed > 2 * f.expected
    assert f.scope == {"model": "m", "model_version": "v1"}


def test_ordinary_requests_and_noisy_ratings_stay_quiet() -> None:
    # Two hours of one version at its usual rates, ratings of the usual mix (whose
    # runs of bad luck are the noise), fed interleaved as the engine would.
    det = FeedbackDetector()
    for k in range(24):
        req = requests(300, start=k * 300.0, seed=10 + k)
        fb = ratings(60, 0.5, start=k * 300.0, seed=100 + k)
        assert not [f for f in feed(det, req, size=500) + feed(det, fb) if f.anomalous]


def test_weak_signals_add_up_sooner_than_either_alone() -> None:
    def onset(refusal: float, length: float) -> float:
        det = warmed()
        return first_alarm(det, requests(600, refusal=refusal, length=length, start=1200, seed=3))

    refusals, truncations = onset(0.03, 0.04), onset(0.015, 0.065)
    both = onset(0.03, 0.065)
    assert both < min(refusals, truncations)
    assert math.isfinite(both)


def test_the_explanation_names_every_signal_that_moved() -> None:
    det = warmed()
    feed(det, requests(200, refusal=0.05, length=0.09, start=1200, seed=4), size=50)
    f = [f for f in feed(det, requests(5, refusal=0.05, length=0.09, start=1400, seed=5))][-1]
    assert f.anomalous
    assert "refusals" in f.explanation and "truncations" in f.explanation
    assert "threshold" in f.explanation


def test_the_threshold_comes_from_the_alert_budget_per_label() -> None:
    # v2 may page 100 times as often: log(100) ~ 4.6 less evidence, an earlier alarm.
    det = FeedbackDetector(
        alert_budget_overrides=[
            {"match": {"model_version": "v2"}, "false_alerts_per_series_week": 50}
        ]
    )
    both = InferenceColumns.concat([requests(1200, seed=6), requests(1200, seed=6, version="v2")])
    feed(det, both.take(np.argsort(both.ts, kind="stable")), size=500)
    bad = InferenceColumns.concat(
        [
            requests(300, refusal=0.06, start=1200, seed=7),
            requests(300, refusal=0.06, start=1200, seed=7, version="v2"),
        ]
    )
    onsets: dict[str, float] = {}
    for i in range(0, len(bad), 40):
        for f in det.update(bad.take(np.argsort(bad.ts, kind="stable")[i : i + 40])).findings:
            if f.anomalous:
                onsets.setdefault(f.series["model_version"], f.ts)
    assert onsets["v2"] < onsets.get("v1", math.inf)


def test_a_version_2_snapshot_keeps_what_it_learned_from_ratings() -> None:
    # The fixture was written by the release before the state helper (state version 1)
    # after the first half of the then ratings-only contract case; it migrates 1 -> 2 -> 3.
    batches, _ = split(*_ratings(np.random.default_rng(7)), 250)
    whole = FeedbackDetector()
    for b in batches[: len(batches) // 2]:
        whole.update(b)
    restored = FeedbackDetector.restore(
        (SNAPSHOTS / "feedback_before_state_helper.snapshot").read_bytes()
    )
    assert "threshold" not in restored.params()
    assert restored.active_series() == whole.active_series() > 0
    # The rating baselines carry over (that release's CUSUM differed in details, so its
    # statistic is kept as it was rather than compared).
    np.testing.assert_allclose(restored.st.rating, whole.st.rating, rtol=1e-9)
    assert not restored.st.rate_n.any()  # the request baselines start learning
    for b in batches[len(batches) // 2 :]:
        restored.update(b)


def ref_quality(rows: list[tuple[int, float, F64]], budget: float, prm: F64) -> list[float]:
    """Plain-Python reference of ``kern.quality_update`` (one fresh state)."""
    state: dict[int, dict[str, Any]] = {}
    out: list[float] = []
    for sid, t, sig in rows:
        v = state.setdefault(
            sid,
            {
                "r": [0.0, 0.0, 0.0, 0.0],
                "p": [0.0, 0.0],
                "n": [0.0, 0.0],
                "s": 0.0,
                "en": 0.0,
                "t0": math.nan,
            },
        )
        step, used = 0.0, False
        x = sig[0]
        if math.isfinite(x) and v["r"][3] >= prm[kern.WARMUP]:
            _, mgf, mgf2, n = v["r"]
            a = prm[kern.SLOW_ALPHA]
            n_eff = max(min(n, (2 - a) / a), 1.0)
            margin = prm[kern.MARGIN] * math.sqrt(max(mgf2 / mgf**2 - 1, 0.0) / n_eff)
            step += -prm[kern.TILT] * x - math.log(mgf) - margin
            used = True
        for r in range(2):
            y = sig[r + 1]
            if math.isfinite(y) and v["n"][r] >= prm[kern.RATE_WARMUP]:
                p, n = v["p"][r], v["n"][r]
                ph = (p * n + 0.5) / (n + 1)
                a = prm[kern.RATE_ALPHA]
                n_eff = max(min(n, (2 - a) / a), 1.0)
                p0 = min(ph + prm[kern.RATE_MARGIN] * math.sqrt(ph * (1 - ph) / n_eff), 0.9)
                p1 = min(prm[kern.RATE_RATIO] * p0, 0.99)
                step += math.log(p1 / p0) if y > 0.5 else math.log((1 - p1) / (1 - p0))
                used = True
        if used:
            v["en"] += 1
            v["t0"] = t if math.isnan(v["t0"]) else min(v["t0"], t)
        span = max(t - v["t0"], 60.0) if not math.isnan(v["t0"]) else 60.0
        h = max(math.log(max(v["en"] / span, 1e-6) * kern.WEEK_S / budget), prm[kern.MIN_H])
        if used:
            v["s"] = min(max(v["s"] + step, 0.0), 1.5 * h)
        slow = prm[kern.DECLINED] if v["s"] >= h / 2 else 1.0
        if math.isfinite(x):
            a = max(prm[kern.SLOW_ALPHA], 1 / (v["r"][3] + 1)) * slow
            e = math.exp(-prm[kern.TILT] * x)
            for i, target in enumerate((x, e, e * e)):
                v["r"][i] += a * (target - v["r"][i])
            v["r"][3] += 1
        for r in range(2):
            y = sig[r + 1]
            if math.isfinite(y):
                a = max(prm[kern.RATE_ALPHA], 1 / (v["n"][r] + 1)) * slow
                v["p"][r] += a * (y - v["p"][r])
                v["n"][r] += 1
        out.append(v["s"])
    return out


def test_kernel_matches_the_plain_python_reference() -> None:
    rng = np.random.default_rng(11)
    n = 3000
    ids = rng.integers(0, 3, n).astype(np.int64)
    ts = T0 + np.sort(rng.uniform(0, 3000, n))
    sig = np.full((n, 3), np.nan)
    kind = rng.integers(0, 3, n)
    sig[kind == 0, 0] = rng.choice([-1.0, 0.0, 1.0], int((kind == 0).sum()), p=[0.5, 0.2, 0.3])
    late = ts > T0 + 1500  # refusals and truncations worsen halfway
    sig[kind > 0, 1] = rng.random(int((kind > 0).sum())) < np.where(late, 0.2, 0.05)[kind > 0]
    sig[kind == 2, 2] = (rng.random(int((kind == 2).sum())) < 0.1).astype(np.float64)
    sig[rng.random(n) < 0.05, 1] = np.nan
    prm = FeedbackDetector(warmup=20, rate_warmup=50)._params
    size = 3
    got, _ = kern.quality_update(
        ids,
        ts,
        sig,
        np.full(size, 0.5),
        np.zeros((size, 4)),
        np.zeros((size, 2)),
        np.zeros((size, 2)),
        np.zeros(size),
        np.zeros((size, 3, 2)),
        np.zeros(size),
        np.full(size, np.nan),
        prm,
    )
    want = ref_quality(list(zip(ids.tolist(), ts.tolist(), sig, strict=True)), 0.5, prm)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert max(want) > 0  # the comparison saw evidence, not only zeros
