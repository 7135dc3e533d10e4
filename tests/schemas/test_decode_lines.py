"""The msgspec line parser behind ``decode_columns``: it must give exactly what the
per-message orjson path gives, and hand over every batch it cannot vouch for."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import orjson
import pytest

import schemas._fast as fast
from schemas.columns import Columns
from schemas.decode import decode_columns, decode_models
from tests.schemas.test_decode_rules import NOW, gpu, inference


def both_paths(msgs: list[bytes], kind: str) -> tuple[Any, Any]:
    """decode_columns with the msgspec step, and with it switched off (orjson only)."""
    with_lines = decode_columns(msgs, kind=kind, now=NOW)
    saved = fast.fast_rows
    fast.fast_rows = lambda raws, kind: None  # type: ignore[assignment]
    try:
        orjson_only = decode_columns(msgs, kind=kind, now=NOW)
    finally:
        fast.fast_rows = saved
    return with_lines, orjson_only


def assert_same(a: Columns, b: Columns) -> None:
    assert type(a) is type(b) and len(a) == len(b)
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if x.dtype.kind == "f":
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert x.tolist() == y.tolist(), f.name


def test_a_clean_batch_takes_the_line_parser_and_matches_orjson() -> None:
    events = [
        inference(request_id=f"r{i}", latency_ms=100.0 + i, host=None if i % 3 else f"h{i}")
        for i in range(3000)  # more than one parse step
    ]
    events[7].pop("ttft_ms")
    events[8]["tenant"] = "t-1"
    events[9]["prompt_tokens"] = 12
    msgs = [orjson.dumps(e) for e in events]
    assert fast.fast_rows(msgs, "inference") is not None
    (cols, bad), (ref, ref_bad) = both_paths(msgs, "inference")
    assert bad == ref_bad == []
    assert_same(cols, ref)
    assert cols.host.tolist()[:4] == ["h0", None, None, "h3"]  # type: ignore[attr-defined]
    assert np.isnan(cols.ttft_ms[7]) and cols.prompt_tokens[9] == 12.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "odd",
    [
        b'{"kind":"inference","unknown":1e400}',  # orjson refuses; msgspec would skip it
        b'{"kind":"inference",\n"ts":"2024-06-01T11:59:00Z"}',  # a newline in a message
        b"{}\n{}",
        b"",
        b"   ",
        b'{"kind":"inference","latency_ms":1' + b"0" * 400 + b"}",
        b'{"kind":"inference","prompt_tokens":184467440737095516150}',
        b'{"kind":"inference","tenant":' + b"[" * 1100 + b"]" * 1100 + b"}",
        b"\xef\xbb\xbf{}",
    ],
)
def test_odd_messages_get_the_reference_verdict_and_spare_their_neighbours(odd: bytes) -> None:
    good = [orjson.dumps(inference(request_id=f"r{i}")) for i in range(4)]
    msgs = [good[0], good[1], odd, good[2], good[3]]
    (cols, bad), (ref, ref_bad) = both_paths(msgs, "inference")
    assert_same(cols, ref)
    assert bad == ref_bad
    models, model_bad = decode_models(msgs, kind="inference", now=NOW)
    assert len(cols) == len(models) and [r.reason for r in bad] == [r.reason for r in model_bad]
    assert len(cols) >= 4  # the four good messages always survive


def test_fields_read_as_none_when_absent_are_filled_by_msgspec_and_the_rest_are_not() -> None:
    rows = fast.fast_rows([orjson.dumps(inference())], "inference")
    assert rows is not None
    # Optional numbers read absent as None; required and defaulted ones must tell absent
    # apart, so msgspec leaves them UNSET for the extractor's own default.
    assert {"toxicity", "host", "http_status"} <= rows.filled
    assert not {"ts", "route", "prompt_tokens", "finish_reason"} & rows.filled
    assert rows._get("route", "dflt") == ["dflt"] and rows._get("toxicity", None) == [None]


def test_gpu_samples_match_orjson_including_defaults() -> None:
    samples = [gpu(gpu_index=i % 8, temp_c=60.0 + i) for i in range(50)]
    samples[3]["xid"] = 79
    samples[4]["clocks_event_reasons"] = 2**63 + 5
    msgs = [orjson.dumps(s) for s in samples]
    (cols, bad), (ref, ref_bad) = both_paths(msgs, "gpu")
    assert bad == ref_bad == []
    assert_same(cols, ref)
    assert cols.xid[3] == 79 and int(cols.clocks_event_reasons[4]) == 2**63 + 5  # type: ignore[attr-defined]
