"""A detector that says ``row_findings`` reports per row: its contract case fed as one
batch, in uneven batches, or a row at a time gives the same findings and scores (the
engine and replay rely on it to take whole files at once)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from schemas.columns import Columns
from tests.detectors.test_contract import CLASSES, SEED, load_case_module, norm_finding

ROW_EXACT = sorted(name for name, cls in CLASSES.items() if cls.row_findings)


def _feed(name: str, batches: list[Columns]) -> tuple[list[Any], np.ndarray[Any, Any]]:
    det = CLASSES[name]()
    findings: list[Any] = []
    scores = []
    for b in batches:
        out = det.update(b)
        findings += [norm_finding(f) for f in out.findings]
        scores.append(out.scores)
    return findings, np.concatenate(scores)


def test_some_detector_reports_per_row() -> None:
    assert "series" in ROW_EXACT


@pytest.mark.parametrize("name", ROW_EXACT)
def test_batching_does_not_change_what_a_row_findings_detector_reports(name: str) -> None:
    parts, _ = load_case_module(name).make_case(SEED)
    whole = type(parts[0]).concat(parts)
    n = len(whole)
    rows = [whole.take(slice(i, i + 1)) for i in range(n)]
    cuts = [0, 1, 7, 100, n // 2, n // 2 + 3, n]
    uneven = [whole.take(slice(a, b)) for a, b in itertools.pairwise(cuts) if b > a]
    one = _feed(name, [whole])
    assert one[0], "the case must give findings for this to check anything"
    for other in (_feed(name, rows), _feed(name, uneven)):
        assert other[0] == one[0]
        np.testing.assert_array_equal(other[1], one[1])
