"""Error-rate detector: fires on bursts, not on one failure out of two requests."""

from __future__ import annotations

import numpy as np
from cases import inference_columns
from cases.error_rate import make_case

from detectors.error_rate import ErrorRateDetector
from schemas.columns import STATUS_CODES


def test_fires_on_error_burst_and_timeouts() -> None:
    batches, labels = make_case(11)
    det = ErrorRateDetector()
    outs = [det.update(b) for b in batches]
    kinds = {(f.kind, f.series["gateway"]) for o in outs for f in o.findings if f.anomalous}
    assert ("error_rate.error", "gw-b") in kinds and ("error_rate.timeout", "gw-a") in kinds
    scores = np.concatenate([o.scores for o in outs])
    lab = np.concatenate(labels)
    assert scores[lab].mean() > 3 * scores[~lab].mean()


def test_low_counts_do_not_alert() -> None:
    ts = 1.7e9 + np.array([0.0, 1.0])
    status = np.array([STATUS_CODES["error"], STATUS_CODES["ok"]])
    out = ErrorRateDetector().update(inference_columns(ts, status=status))
    assert (out.scores < 0.5).all() and not out.findings


def test_quiet_on_clean_background() -> None:
    rng = np.random.default_rng(2)
    ts = 1.7e9 + np.sort(rng.uniform(0, 3600, 5000))
    status = np.where(rng.random(5000) < 0.01, STATUS_CODES["error"], STATUS_CODES["ok"])
    det = ErrorRateDetector()
    outs = [
        det.update(inference_columns(ts[i : i + 250], status=status[i : i + 250]))
        for i in range(0, 5000, 250)
    ]
    assert not [f for o in outs for f in o.findings if f.anomalous]
