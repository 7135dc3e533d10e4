"""The vectorised ISO parser agrees with the per-value parser on every row it accepts."""

from __future__ import annotations

import random

import numpy as np

from schemas._fast_rows import _iso_batch
from schemas._isotime import iso_utc_fast


def _candidates(seed: int, n: int, fraction: str) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        year = rng.choice([1969, 1970, 2000, 2024, 2028, 2100, 2199, 2200])
        fields = (rng.randint(0, 13), rng.randint(0, 32), rng.randint(0, 25), rng.randint(0, 61))
        frac = fraction % rng.randint(0, 999_999) if fraction else ""
        text = f"{year:04d}-{fields[0]:02d}-{fields[1]:02d}T{fields[2]:02d}:{fields[3]:02d}:"
        text += f"{rng.randint(0, 61):02d}{frac}Z"
        if rng.random() < 0.03:
            text = text.replace("T", " ")
        if rng.random() < 0.03:
            text = text[:6] + "x" + text[7:]
        out.append(text)
    return out


def test_agrees_with_fromisoformat_and_leaves_the_rest() -> None:
    for fraction in ("", ".%06d", ".%03d"):
        values = _candidates(7, 4000, fraction)
        if fraction == ".%03d":
            values = [v[:20] + v[20:23] + "Z" for v in values]  # three digits
        found = iso_utc_fast(values)
        assert found is not None
        ts, parsed = found
        reference = np.array(_iso_batch(values))
        assert parsed.sum() > 500  # the common case is taken
        assert np.array_equal(ts[parsed], reference[parsed])
        # Nothing the reference refuses is accepted here.
        assert not (parsed & np.isnan(reference)).any()


def test_not_applicable_to_mixed_lengths_or_other_layouts() -> None:
    assert iso_utc_fast(["2024-06-03T08:00:00Z", "2024-06-03T08:00:00.5Z"]) is None
    assert iso_utc_fast(["2024-06-03T08:00:00+00:00"]) is None
    assert iso_utc_fast(["2024-06-03T08:00:00ÄZ"[:20]]) is None
    assert iso_utc_fast([]) is None
