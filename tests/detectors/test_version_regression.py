"""Version regression: a slower new version is named with the old one; a clean rollout is not."""

from __future__ import annotations

import numpy as np

from detectors.version_regression import VersionRegressionDetector
from tests.detectors.cases.version_regression import make_case


def test_regressed_rollout_found_clean_one_quiet() -> None:
    batches, labels = make_case(9)
    det = VersionRegressionDetector()
    outs = [det.update(b) for b in batches]
    fired = [f for o in outs for f in o.findings if f.anomalous]
    assert {f.series["gateway"] for f in fired} == {"gw-a"}
    assert "v2 vs v1" in fired[0].explanation
    scores = np.concatenate([o.scores for o in outs])
    lab = np.concatenate(labels)
    assert scores[lab].mean() > 0.5 > scores[~lab].mean()
