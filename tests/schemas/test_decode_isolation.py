"""One message can cost only itself: whatever it does to the decoder becomes its own
reject, at its own index, and both decoders say the same about it."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import orjson
import pytest

import schemas._fast as fast
from schemas.brief import brief, brief_exception
from schemas.columns import COLUMNS_BY_KIND, InferenceColumns, MetricColumns
from schemas.decode import DecodePaths, Reject, decode_columns, decode_models
from schemas.models import InferenceEvent
from tests.schemas.test_decode_rules import NOW, inference

BASE = (
    b'{"kind":"inference","ts":"2024-06-01T11:00:00Z","gateway":"g","model":"m",'
    b'"request_id":"r","status":"ok","latency_ms":1,"model_version":'
)


def deep(n: int) -> Any:
    out: list[Any] = []
    for _ in range(n):
        out = [out]
    return out


def good(i: int) -> bytes:
    return orjson.dumps(inference(request_id=f"r{i}"))


def test_deeply_nested_value_is_a_reject_not_a_recursion_error() -> None:
    # The reproducer: repr() of the 1,000-deep list in the reason raised.
    poison = BASE + b"[" * 1000 + b"]" * 1000 + b"}"
    msgs = [good(0), poison, good(1)]
    cols, bad = decode_columns(msgs, kind="inference", now=NOW)
    models, model_bad = decode_models(msgs, kind="inference", now=NOW)
    assert len(cols) == len(models) == 2
    assert bad == model_bad and [r.index for r in bad] == [1]
    assert bad[0].location == "model_version" and len(bad[0].reason) < 200
    assert bad[0].raw == poison


@pytest.mark.parametrize(
    "value",
    [deep(100_000), "x" * 10_000_000, 10**5000, {"a": [1] * 1_000_000}, [deep(50)] * 1000],
    ids=["deep-list", "10MB-string", "5000-digit-int", "wide-dict", "deep-and-wide"],
)
def test_brief_is_bounded_whatever_the_value(value: Any) -> None:
    text = brief(value)
    assert 0 < len(text) <= 80


@pytest.mark.parametrize(
    "value", [None, 1, -2.5, "é\n'\"", [1, [2, {"a": None}]], {"k": [True, "v"]}, [], {}]
)
def test_brief_is_repr_where_repr_fits(value: Any) -> None:
    assert brief(value) == repr(value)


def test_brief_exception_names_the_type_and_never_recurses() -> None:
    assert brief_exception(KeyError(deep(100_000))).startswith("KeyError: [[[")
    assert brief_exception(ZeroDivisionError()) == "ZeroDivisionError"
    assert len(brief_exception(ValueError("x" * 10_000))) < 220


def test_an_exception_while_validating_one_message_rejects_that_message_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = InferenceEvent.model_validate.__func__  # type: ignore[attr-defined]

    def flaky(cls: type[InferenceEvent], /, obj: Any, **kw: Any) -> InferenceEvent:
        if obj.get("request_id") == "boom":
            raise ZeroDivisionError("a validator's bug")
        return real(cls, obj, **kw)  # type: ignore[no-any-return]

    monkeypatch.setattr(InferenceEvent, "model_validate", classmethod(flaky))
    # A row with an embedding is one the fast path defers, so the reference sees it there too.
    poison = orjson.dumps(inference(request_id="boom", embedding=[1.0]))
    msgs = [good(0), poison, good(1)]
    for decoded, bad in (
        decode_columns(msgs, kind="inference", now=NOW),
        decode_models(msgs, kind="inference", now=NOW),
    ):
        assert len(decoded) == 2
        assert bad == [
            Reject(
                1,
                poison,
                "invalid message: ZeroDivisionError: a validator's bug",
                "$",
                "ZeroDivisionError",
            )
        ]


def test_a_batch_the_columnar_code_raises_on_is_decoded_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    msgs = [good(0), b"{}", good(1)]
    expected_cols, expected_bad = decode_columns(msgs, kind="inference", now=NOW)

    def broken(rows: Any, now: float, skew: float) -> Any:
        raise IndexError("a bug in the batch code")

    monkeypatch.setitem(fast.FAST_DECODERS, "inference", broken)
    paths = DecodePaths()
    cols, bad = decode_columns(msgs, kind="inference", now=NOW, paths=paths)
    assert bad == expected_bad and [r.index for r in bad] == [1]
    assert isinstance(cols, InferenceColumns) and len(cols) == 2
    assert cols.model.tolist() == expected_cols.model.tolist()  # type: ignore[attr-defined]
    assert paths == DecodePaths(columnar=0, per_message=3, reference=3, fallback=3)


@pytest.mark.parametrize(
    "batch",
    [
        [good(0) + b" " + good(1), b""],
        [good(0) + good(1), b"   "],
        [good(0) + b"\r" + good(1), b"\t"],
        [good(0) + b"\t" + good(1), b"\r\n"],
        [b"", good(0), b" "],
        [good(0), b"\n", good(1)],
    ],
    ids=["space", "none", "cr", "tab", "empty-first", "newline-only"],
)
def test_two_documents_or_none_in_a_message_are_rejected_at_its_own_index(
    batch: list[bytes],
) -> None:
    cols, bad = decode_columns(batch, kind="inference", now=NOW)
    models, model_bad = decode_models(batch, kind="inference", now=NOW)
    assert bad == model_bad
    assert len(cols) == len(models)
    singles = [i for i, m in enumerate(batch) if m in (good(0), good(1))]
    assert sorted(r.index for r in bad) == sorted(set(range(len(batch))) - set(singles))


@pytest.mark.parametrize("depth", [33, 500, 999, 1020])
def test_a_known_field_nested_too_deep_is_one_clear_reject_wherever_it_is_decoded(
    depth: int,
) -> None:
    # Enum's and pydantic's errors repr() the input: at ~1,000 levels that raised
    # RecursionError or not depending on the caller's stack. Now it never gets there.
    poison = orjson.dumps(inference(status="@")).replace(b'"@"', b"[" * depth + b"]" * depth)
    for msgs in ([poison], [good(0), poison]):
        _, bad = decode_columns(msgs, kind="inference", now=NOW)
        assert decode_models(msgs, kind="inference", now=NOW)[1] == bad
        assert [(r.reason, r.location, r.exception) for r in bad] == [
            ("status: nested more than 32 levels deep", "status", None)
        ]


def test_nesting_in_unknown_fields_is_ignored_as_the_models_ignore_them() -> None:
    msg = orjson.dumps(inference(extra="@")).replace(b'"@"', b"[" * 500 + b"]" * 500)
    cols, bad = decode_columns([msg], kind="inference", now=NOW)
    assert bad == [] and len(cols) == 1
    assert len(decode_models([msg], kind="inference", now=NOW)[0]) == 1


def test_negative_zero_epoch_gives_the_same_column_bits_as_the_model() -> None:
    # Found by `make fuzz`: the columnar path kept -0.0, the model's datetime gives 0.0.
    msgs = [b'{"ts": -0.0, "name": "n", "value": 1}', b'{"ts": -0, "name": "n", "value": 1}']
    decoded, bad = decode_columns(msgs, kind="metric", now=NOW)
    cols = cast(MetricColumns, decoded)
    models, _ = decode_models(msgs, kind="metric", now=NOW)
    ref = cast(MetricColumns, COLUMNS_BY_KIND["metric"].from_rows(models))
    assert bad == [] and cols.ts.tobytes() == ref.ts.tobytes() == np.zeros(2).tobytes()
