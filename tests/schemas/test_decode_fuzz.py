"""Property tests: nothing raises, bad input is rejected with a reason, and the columnar
fast path agrees exactly with the pydantic reference (decode_models + from_rows)."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import fuzz_decode
from schemas.columns import COLUMNS_BY_KIND, Columns
from schemas.decode import decode_columns, decode_models

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC).timestamp()


def enc(obj: Any) -> bytes:
    # json, not orjson: it writes any int and Infinity, both of which the decoders must survive.
    return json.dumps(obj).encode()


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

label = st.sampled_from(["a", "gw-1", "model/x", "é", "x" * 256])
ms = st.floats(0, 1e5, allow_nan=False) | st.integers(0, 10**5)
ts = st.sampled_from(
    ["2024-06-01T11:00:00Z", "2024-06-01T11:59:59.123456+00:00", "2024-06-01T10:00:00"]
) | st.floats(1.6e9, NOW, allow_nan=False)


@st.composite
def inference_event(draw: st.DrawFn) -> dict[str, Any]:
    latency = draw(ms)
    event: dict[str, Any] = {
        "kind": "inference",
        "ts": draw(ts),
        "gateway": draw(label),
        "model": draw(label),
        "model_version": draw(label),
        "request_id": draw(st.text(min_size=1, max_size=8)),
        "status": draw(st.sampled_from(["ok", "error", "timeout", "cancelled"])),
        "latency_ms": latency,
        "prompt_tokens": draw(st.integers(0, 10**6)),
    }
    optional = {
        "ttft_ms": st.floats(0, 1, allow_nan=False).map(lambda f: f * latency),
        "queue_ms": st.just(latency / 2),
        "tpot_ms": ms,
        "http_status": st.integers(100, 599),
        "tenant": label,
        "host": st.none() | label,
        "finish_reason": st.sampled_from(["stop", "length", "unknown"]),
        "refusal": st.booleans(),
        "toxicity": st.floats(0, 1),
        "feedback_score": st.floats(-1, 1),
        "embedding_norm": st.floats(0, 10),
        "schema_version": st.just(1),
        "extra_field": st.integers(),
    }
    for key in draw(st.sets(st.sampled_from(sorted(optional)))):
        event[key] = draw(optional[key])
    return event


@st.composite
def gpu_sample(draw: st.DrawFn) -> dict[str, Any]:
    total = draw(st.floats(1, 1e5))
    return {
        "kind": "gpu",
        "ts": draw(ts),
        "host": draw(label),
        "gpu_index": draw(st.integers(0, 1023)),
        "gpu_uuid": draw(label),
        "sm_util_pct": draw(st.floats(0, 100)),
        "mem_util_pct": draw(st.integers(0, 100)),
        "mem_used_mib": draw(st.floats(0, 1)) * total,
        "mem_total_mib": total,
        "temp_c": draw(st.floats(-50, 150)),
        "power_w": draw(st.floats(0, 1000)),
        "power_limit_w": 700.0,
        "sm_clock_mhz": draw(st.integers(0, 3000)),
        "clocks_event_reasons": draw(st.integers(0, 2**64 - 1)),
        "xid": draw(st.none() | st.integers(0, 2**63 - 1)),
    }


@st.composite
def metric_sample(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "ts": draw(ts),
        "name": draw(label),
        "labels": draw(st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=4)),
        "value": draw(st.floats(allow_nan=False, allow_infinity=False)),
    }


@st.composite
def feedback_event(draw: st.DrawFn) -> dict[str, Any]:
    event = {
        "ts": draw(ts),
        "request_id": draw(st.text(min_size=1, max_size=5)),
        "model": draw(label),
        "model_version": draw(label),
        "score": draw(st.floats(-1, 1)),
    }
    if draw(st.booleans()):
        event["label"] = draw(st.text(max_size=70))
    return event


GOOD = {
    "inference": inference_event(),
    "gpu": gpu_sample(),
    "metric": metric_sample(),
    "feedback": feedback_event(),
}

# Values chosen to sit on the edges where the fast path and pydantic could part ways.
tricky = st.sampled_from(
    [None, True, False, 0, -0.0, -1, 1, 1.0, 1.5, "1.5", "", "x" * 300, "NaN", "Infinity",
     1e308, -1e308, 2**53 + 1, 2**63, 2**63 - 1, 2**64 - 1, -(2**63), [], {}, [1.0], {"a": 1},
     "2030-01-01T00:00:00Z", "2024-06-01T12:04:59Z", "2024-06-01T12:05:01+00:00", NOW + 301,
     "2024-02-30T00:00:00Z", "0001-01-01T00:00:00+01:00", 9e9, 9.1e9, "ok", "stop", "gpu",
     "inference", 2, 100, 599, 600, 1023, 1024, {"k": "v"}, {"k": 1}, [3.0, 4.0], 101.0]
)  # fmt: skip
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def corrupted(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    event = dict(draw(GOOD[kind]))
    keys = [*sorted(event), "kind", "schema_version", "embedding", "labels", "ttft_ms"]
    key = draw(st.sampled_from(keys))
    action = draw(st.sampled_from(["set", "set", "set", "drop"]))
    if action == "drop":
        event.pop(key, None)
    else:
        event[key] = draw(tricky | any_json)
    return event


def message(kind: str) -> st.SearchStrategy[bytes]:
    good = GOOD[kind].map(enc)
    bad = corrupted(kind).map(enc)
    junk = st.binary(max_size=40) | any_json.map(enc)
    return st.one_of(good, good, bad, bad, junk)


def assert_same_columns(a: Columns, b: Columns) -> None:
    assert type(a) is type(b)
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.dtype == y.dtype, f.name
        if x.dtype == np.float64:
            # Bitwise: NaN where NaN, and no rounding difference anywhere.
            assert x.tobytes() == y.tobytes(), (f.name, x, y)
        else:
            assert x.tolist() == y.tolist(), f.name


@FAST
@given(
    st.sampled_from(sorted(GOOD)).flatmap(
        lambda k: st.tuples(st.just(k), st.lists(message(k), max_size=12))
    )
)
def test_fast_path_agrees_with_models(case: tuple[str, list[bytes]]) -> None:
    kind, raws = case
    models, bad_models = decode_models(raws, kind=kind, now=NOW)
    cols, bad_cols = decode_columns(raws, kind=kind, now=NOW)
    assert bad_cols == bad_models
    assert_same_columns(cols, COLUMNS_BY_KIND[kind].from_rows(models))
    assert len(cols) + len(bad_cols) == len(raws)


@FAST
@given(st.lists(st.sampled_from(sorted(GOOD)).flatmap(message), max_size=10))
def test_every_bad_message_is_a_reject_and_good_ones_keep_order(raws: list[bytes]) -> None:
    models, rejects = decode_models(raws, now=NOW)
    assert len(models) + len(rejects) == len(raws)
    for r in rejects:
        assert r.reason and r.location and r.raw == raws[r.index]
    accepted = sorted(set(range(len(raws))) - {r.index for r in rejects})
    # Each survivor is its own message decoded alone, in input order.
    for i, model in zip(accepted, models, strict=True):
        assert decode_models([raws[i]], now=NOW)[0] == [model]


@FAST
@given(st.lists(st.binary(max_size=64) | any_json.map(enc), max_size=8))
def test_junk_never_raises(raws: list[bytes]) -> None:
    for kind in [None, "inference", "alert"]:
        _, rejects = decode_models(raws, kind=kind, now=NOW)
        assert all(r.reason and r.location for r in rejects)
    cols, rejects = decode_columns(raws, kind="metric", now=NOW)
    assert len(cols) + len(rejects) == len(raws)


def test_differential_fuzz_100k_messages_no_exception_no_disagreement() -> None:
    """benchmarks.fuzz_decode's generator (every category of the issue: truncation, wrong
    types, 1e309, 2**64, NaN/Infinity, deep nesting, 10 MB strings, invalid UTF-8,
    surrogates, duplicate keys, BOM, unknown/missing fields, far timestamps, two
    documents in one message, empty/blank messages, mixed batches); `make fuzz` runs 1M."""
    counts = fuzz_decode.run(100_000, seed=16)
    assert counts.examples == [] and counts.exceptions == 0 and counts.disagreements == 0
    assert counts.messages == 100_000 and counts.fallback == 0
    # The run reached every path, with plenty of each verdict.
    assert counts.accepted > 50_000 and counts.rejected > 10_000
    assert counts.columnar > 20_000 and counts.per_message > 20_000 and counts.reference > 5_000


def test_the_fuzz_generator_makes_every_category() -> None:
    seen: set[str] = set()
    for _, batch, max_bytes in fuzz_decode._batches(30_000, seed=16):
        for raw in batch:
            if not isinstance(raw, bytes):
                seen.add("non-bytes")
                continue
            checks = {
                "10MB-string": len(raw) > 10_000_000 and max_bytes > len(raw),
                "1e309": b"1e309" in raw,
                "2**64": b"18446744073709551616" in raw,
                "NaN-token": b":NaN" in raw or b": NaN" in raw,
                "Infinity-token": b"Infinity," in raw or b"Infinity}" in raw,
                "deep": b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[" in raw,
                "invalid-utf8": b"\xff" in raw or b"\xc0\x80" in raw,
                "surrogate-escape": b"\\ud800" in raw,
                "bom": raw.startswith(b"\xef\xbb\xbf"),
                "empty": raw == b"",
                "blank": raw != b"" and raw.strip() == b"",
                "two-docs": b"}{" in raw or b"} {" in raw or b"}\r{" in raw or b"}\t{" in raw,
                "far-ts": b"9999-12-31" in raw or b"0001-01-01" in raw,
                "unknown-field": b'"unknown_field"' in raw,
            }
            seen.update(name for name, hit in checks.items() if hit)
    assert seen == {
        "10MB-string", "1e309", "2**64", "NaN-token", "Infinity-token", "deep", "invalid-utf8",
        "surrogate-escape", "bom", "empty", "blank", "two-docs", "far-ts", "unknown-field",
        "non-bytes",
    }  # fmt: skip
