"""Per-batch label codes: the same keys, ids and order as hashing every row would give."""

from __future__ import annotations

import random
from dataclasses import fields
from typing import Any

import numpy as np
import orjson

from detectors._tracking import labels_of
from detectors.registry import SeriesRegistry
from schemas.columns import FeedbackColumns
from schemas.decode import decode_columns
from schemas.labels import label_codes, subset


def _obj(values: list[Any]) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _feedback(models: list[Any], versions: list[Any]) -> FeedbackColumns:
    n = len(models)
    return FeedbackColumns(
        ts=np.arange(n, dtype=np.float64),
        request_id=_obj([f"r{i}" for i in range(n)]),
        model=_obj(models),
        model_version=_obj(versions),
        score=np.zeros(n),
        label=_obj([None] * n),
    )


def _per_row_keys(batch: FeedbackColumns, names: tuple[str, ...]) -> list[tuple[Any, ...]]:
    cols = labels_of(tuple(getattr(batch, c) for c in names))
    return list(zip(*(c.tolist() for c in cols), strict=True))


def test_codes_give_each_rows_key_in_first_seen_order() -> None:
    rng = random.Random(3)
    models = [rng.choice(["a", "b", None, ""]) for _ in range(500)]
    versions = [rng.choice(["v1", "v2", None]) for _ in range(500)]
    batch = _feedback(models, versions)
    names = ("model", "model_version")
    found = label_codes(batch, names)
    assert found is not None
    codes, keys = found
    rows = _per_row_keys(batch, names)
    assert [keys[c] for c in codes.tolist()] == rows
    assert keys == list(dict.fromkeys(rows))  # distinct, None counted as ""
    assert label_codes(batch, names) is found  # cached on the batch


def test_subset_keeps_only_keys_of_the_chosen_rows() -> None:
    batch = _feedback(["a", "b", "c", "b", "a"], ["1", "1", "1", "2", "1"])
    found = label_codes(batch, ("model", "model_version"))
    assert found is not None
    codes, keys = subset(found, np.array([1, 3, 4]))
    assert [keys[c] for c in codes.tolist()] == [("b", "1"), ("b", "2"), ("a", "1")]
    assert len(keys) == 3


def test_unhashable_labels_get_no_codes_and_the_per_row_path_decides() -> None:
    batch = _feedback([["x"], "a"], ["1", "1"])
    assert label_codes(batch, ("model",)) is None
    reg = SeriesRegistry(("model", "version"))
    with np.testing.assert_raises(TypeError):
        reg.ids_for_batch(batch, ("model", "model_version"))


def test_registry_ids_match_per_row_ids() -> None:
    rng = random.Random(9)
    by_codes = SeriesRegistry(("model", "version"))
    by_rows = SeriesRegistry(("model", "version"))
    for _ in range(5):
        n = rng.randint(1, 300)
        batch = _feedback(
            [rng.choice(["a", "b", "c", None]) for _ in range(n)],
            [rng.choice(["1", "2", ""]) for _ in range(n)],
        )
        ts = np.asarray(batch.ts)
        got = by_codes.ids_for_batch(batch, ("model", "model_version"), ts)
        want = by_rows.ids_for(labels_of((batch.model, batch.model_version)), ts)
        assert got.tolist() == want.tolist()
        np.testing.assert_array_equal(by_codes.last_seen, by_rows.last_seen)
        rows = np.flatnonzero(np.random.default_rng(n).random(n) < 0.5)
        sub = by_codes.ids_for_batch(batch, ("model", "model_version"), ts[rows], rows)
        assert sub.tolist() == got[rows].tolist()


def test_codes_seeded_by_the_decoder_equal_codes_computed_later() -> None:
    raws = [
        orjson.dumps(
            {
                "kind": "feedback",
                "ts": 1_717_401_600 + i,
                "request_id": f"r{i}",
                "model": ["m1", "m2", "m3"][i % 3],
                "model_version": ["v1", "v2"][i % 2],
                "score": 0.5,
            }
        )
        for i in range(40)
    ]
    decoded, rejects = decode_columns(raws, kind="feedback", now=2e9)
    assert not rejects
    assert isinstance(decoded, FeedbackColumns)
    fresh = decoded.take(np.arange(len(decoded)))  # a copy: no seeded cache
    for names in (("model",), ("model", "model_version")):
        seeded, computed = label_codes(decoded, names), label_codes(fresh, names)
        assert seeded is not None and computed is not None
        assert seeded[0].tolist() == computed[0].tolist()
        assert seeded[1] == computed[1]


def test_codes_carried_through_take_and_concat_equal_fresh_ones() -> None:
    rng = random.Random(11)
    n = 300
    batch = _feedback(
        [rng.choice(["a", "b", "c", None]) for _ in range(n)],
        [rng.choice(["1", "2"]) for _ in range(n)],
    )
    names = ("model", "model_version")
    assert label_codes(batch, names) is not None  # parent has codes to hand on
    mask = np.array([rng.random() < 0.3 for _ in range(n)])
    other = _feedback(["d", "a", None], ["3", "1", "1"])
    label_codes(other, ("model",))
    label_codes(other, ("model_version",))
    derived = [
        batch.take(mask),
        batch.take(np.argsort(np.asarray([rng.random() for _ in range(n)]))),
        batch.take(slice(10, 50)),
        FeedbackColumns.concat([batch.take(~mask), other]),
    ]
    for got in derived:
        assert "sparse:model" in got._label_cache  # type: ignore[attr-defined]
        fresh = FeedbackColumns(**{f.name: getattr(got, f.name) for f in fields(got)})
        for key in (("model",), names, ("model_version",)):
            carried, computed = label_codes(got, key), label_codes(fresh, key)
            assert carried is not None and computed is not None
            assert carried[0].tolist() == computed[0].tolist()
            assert carried[1] == computed[1]
