"""One focused test per validation rule, through the decoders a worker actually uses."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from schemas.columns import GpuColumns, InferenceColumns
from schemas.decode import Reject, decode_columns, decode_models, to_dead_letter
from schemas.models import DeadLetter, GpuSample, InferenceEvent, MetricSample, dump_json

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC).timestamp()


def inference(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "kind": "inference",
        "ts": "2024-06-01T11:59:00Z",
        "gateway": "gw-1",
        "model": "llama",
        "model_version": "v1",
        "request_id": "r-1",
        "status": "ok",
        "latency_ms": 100.0,
        "ttft_ms": 20.0,
        "queue_ms": 5.0,
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not _DROP}


def gpu(**changes: Any) -> dict[str, Any]:
    sample: dict[str, Any] = {
        "kind": "gpu",
        "ts": 1717243100.0,
        "host": "node-1",
        "gpu_index": 0,
        "gpu_uuid": "GPU-1",
        "sm_util_pct": 50.0,
        "mem_util_pct": 40.0,
        "mem_used_mib": 1000.0,
        "mem_total_mib": 80000.0,
        "temp_c": 60.0,
        "power_w": 300.0,
        "power_limit_w": 700.0,
        "sm_clock_mhz": 1980.0,
    }
    sample.update(changes)
    return sample


_DROP = object()


def one(obj: Any, kind: str | None = "inference", **kw: Any) -> Reject:
    """Decode a single bad message with both decoders; they must give the same reject."""
    raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    kw.setdefault("now", NOW)
    good, bad = decode_models([raw], kind=kind, **kw)
    assert good == [] and len(bad) == 1
    if kind in ("inference", "gpu"):
        cols, bad_cols = decode_columns([raw], kind=kind, **kw)
        assert len(cols) == 0 and bad_cols == bad
    assert bad[0].raw == raw and bad[0].index == 0
    return bad[0]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-inf"])
def test_nan_and_infinity_are_rejected(value: str) -> None:
    r = one(inference(latency_ms=value))
    assert r.location == "latency_ms" and "finite" in r.reason


def test_literal_nan_is_not_json() -> None:
    r = one(b'{"kind":"inference","latency_ms":NaN}')
    assert r.location == "$" and r.reason.startswith("not valid JSON")


def test_negative_duration_is_rejected() -> None:
    r = one(inference(queue_ms=-1.0))
    assert r.location == "queue_ms"
    assert "greater than or equal to 0" in r.reason and "-1.0" in r.reason


def test_ttft_beyond_latency_is_rejected() -> None:
    r = one(inference(ttft_ms=5000.0))
    assert (r.location, r.reason) == ("ttft_ms", "ttft_ms (5000.0) exceeds latency_ms (100.0)")


def test_queue_beyond_latency_is_rejected() -> None:
    r = one(inference(queue_ms=101.0))
    assert (r.location, r.reason) == ("queue_ms", "queue_ms (101.0) exceeds latency_ms (100.0)")


def test_memory_used_beyond_total_is_rejected() -> None:
    r = one(gpu(mem_used_mib=90000.0), kind="gpu")
    assert r.location == "mem_total_mib"
    assert r.reason == "mem_used_mib (90000.0) exceeds mem_total_mib (80000.0)"


def test_future_timestamp_beyond_skew_is_rejected_and_within_skew_kept() -> None:
    r = one(inference(ts="2024-06-01T12:05:01Z"))
    assert r.location == "ts" and "in the future" in r.reason and "300" in r.reason
    ok = orjson.dumps(inference(ts="2024-06-01T12:05:00Z"))
    assert len(decode_models([ok], kind="inference", now=NOW)[0]) == 1
    assert len(decode_columns([ok], kind="inference", now=NOW)[0]) == 1
    # The skew is configurable, and the clock is whatever the caller says it is.
    r = one(inference(ts="2024-06-01T12:00:02Z"), max_future_skew_s=1.0)
    assert r.location == "ts"
    assert decode_models([ok], kind="inference", now=NOW + 10)[1] == []


def test_unknown_schema_version_is_rejected() -> None:
    r = one(inference(schema_version=2))
    assert r.location == "schema_version" and "unknown schema_version 2" in r.reason


def test_oversize_message_is_rejected_before_parsing() -> None:
    big = orjson.dumps(inference(error_type="x" * 200))
    r = one(big, max_bytes=len(big) - 1)
    assert r.location == "$" and f"{len(big)} bytes" in r.reason
    assert len(decode_models([big], kind="inference", now=NOW, max_bytes=len(big))[0]) == 1


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[1, 2]", "got list"),
        (b"null", "got null"),
        (b"42", "got int"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
    ],
)
def test_whole_message_problems_are_located_at_root(raw: bytes, words: str) -> None:
    r = one(raw)
    assert r.location == "$" and words in r.reason


def test_kind_dispatch_and_forced_kind() -> None:
    msgs = [orjson.dumps(inference()), orjson.dumps(gpu()), b'{"ts": 1}', b'{"kind": [1]}']
    good, bad = decode_models(msgs, now=NOW)
    assert [type(m) for m in good] == [InferenceEvent, GpuSample]
    assert [(r.index, r.location) for r in bad] == [(2, "kind"), (3, "kind")]
    assert "missing" in bad[0].reason and "unknown kind" in bad[1].reason
    r = one(gpu(), kind="inference")
    assert r.location == "kind" and "does not match" in r.reason
    # Without a kind field a forced kind still decodes.
    assert len(decode_models([orjson.dumps(inference(kind=_DROP))], kind="inference", now=NOW)[0])


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2024-06-01T10:00:00Z", 1717236000.0),
        ("2024-06-01T12:00:00+02:00", 1717236000.0),
        ("2024-06-01T10:00:00", 1717236000.0),  # naive means UTC
        ("2024-06-01T10:00:00.250-00:30", 1717237800.25),
        (1717236000, 1717236000.0),
        (1717236000.5, 1717236000.5),  # epoch seconds, never milliseconds
    ],
)
def test_timestamps_iso_or_epoch_seconds(ts: Any, expected: float) -> None:
    raw = orjson.dumps(inference(ts=ts))
    (model,), _ = decode_models([raw], kind="inference", now=NOW)
    assert isinstance(model, InferenceEvent)
    assert model.ts.tzinfo is not None and model.ts.timestamp() == expected
    cols, _ = decode_columns([raw], kind="inference", now=NOW)
    assert cols.ts.tolist() == [expected]  # type: ignore[attr-defined]


@pytest.mark.parametrize("ts", ["yesterday", "1717236000", True, -5, 1717236000000, None, [1]])
def test_bad_timestamps_are_rejected(ts: Any) -> None:
    assert one(inference(ts=ts)).location == "ts"


def test_good_messages_survive_in_order_around_bad_ones() -> None:
    msgs = [orjson.dumps(inference(request_id=f"r{i}", latency_ms=100.0 + i)) for i in range(5)]
    msgs[1] = b"junk"
    msgs[3] = orjson.dumps(inference(latency_ms=-3))
    cols, bad = decode_columns(msgs, kind="inference", now=NOW)
    assert isinstance(cols, InferenceColumns)
    assert cols.latency_ms.tolist() == [100.0, 102.0, 104.0]
    assert [r.index for r in bad] == [1, 3]


def test_rows_the_fast_path_defers_are_still_accepted_in_place() -> None:
    # An int where a float is expected and an embedding both go via the model.
    msgs = [
        orjson.dumps(gpu(gpu_index=1)),
        orjson.dumps(gpu(gpu_index=2, temp_c="61.5")),
        orjson.dumps(gpu(gpu_index=3)),
    ]
    cols, bad = decode_columns(msgs, kind="gpu", now=NOW)
    assert bad == [] and isinstance(cols, GpuColumns)
    assert cols.gpu_index.tolist() == [1, 2, 3] and cols.temp_c.tolist() == [60.0, 61.5, 60.0]
    emb = orjson.dumps(inference(embedding=[3.0, 4.0]))
    icols, _ = decode_columns([emb], kind="inference", now=NOW)
    assert icols.embedding_norm.tolist() == [5.0]  # type: ignore[attr-defined]


def test_round_trip_through_dump_json() -> None:
    event = InferenceEvent.model_validate(inference(tenant="t", http_status=200, refusal=False))
    metric = MetricSample(ts=datetime(2024, 6, 1, tzinfo=UTC), name="x", labels={"a": "b"}, value=1)
    (back_event, back_metric), bad = decode_models([dump_json(event), dump_json(metric)], now=NOW)
    assert bad == [] and back_event == event and back_metric == metric


def test_dead_letter_keeps_raw_bytes_and_reason() -> None:
    r = one(b"\x00\xffbinary")
    dl = to_dead_letter(r, topic="llmwatch.inference", now=NOW, partition=3, offset=42)
    assert isinstance(dl, DeadLetter)
    assert base64.b64decode(dl.raw_b64) == b"\x00\xffbinary"
    assert (dl.topic, dl.partition, dl.offset, dl.location) == ("llmwatch.inference", 3, 42, "$")
    assert dl.reason == r.reason and dl.ts.timestamp() == NOW
    # A dead letter is itself a wire model and survives its own topic.
    (back,), bad = decode_models([dump_json(dl)], now=NOW)
    assert bad == [] and back == dl


def test_non_bytes_inputs_never_raise() -> None:
    good, bad = decode_models([None, "text", bytearray(b"{}")], now=NOW)  # type: ignore[list-item]
    assert good == [] and [r.index for r in bad] == [0, 1, 2]
    assert all(isinstance(r.raw, bytes) and r.reason for r in bad)


def test_dead_letter_of_an_oversized_message_stays_under_the_broker_limit() -> None:
    # An 800 KB message in full would be a 1.07 MB record in base64: over Kafka's 1 MB.
    raw = b'{"kind":"inference","request_id":"' + b"x" * 800_000 + b'"}'
    (r,) = decode_models([raw], kind="inference", now=NOW, max_bytes=1 << 20)[1]
    dl = to_dead_letter(r, topic="llmwatch.inference", now=NOW, partition=0, offset=7)
    record = dump_json(dl)
    assert len(record) < 1_000_000
    head = base64.b64decode(dl.raw_b64)
    assert raw.startswith(head) and 0 < len(head) < len(raw)
    assert dl.raw_truncated and dl.raw_size == len(raw)
    assert dl.raw_sha256 == hashlib.sha256(raw).hexdigest()
    (back,), bad = decode_models([record], kind="deadletter", now=NOW, max_bytes=1 << 20)
    assert bad == [] and back == dl


def test_dead_letter_of_a_small_message_keeps_all_of_it_with_size_and_digest() -> None:
    r = one(b"\x00\xffbinary")
    dl = to_dead_letter(r, topic="t", now=NOW, max_raw_bytes=4)
    assert base64.b64decode(dl.raw_b64) == b"\x00\xffbi" and dl.raw_truncated
    dl = to_dead_letter(r, topic="t", now=NOW)
    assert base64.b64decode(dl.raw_b64) == b"\x00\xffbinary" and not dl.raw_truncated
    assert (dl.raw_size, dl.raw_sha256) == (8, hashlib.sha256(b"\x00\xffbinary").hexdigest())


def test_dead_letter_caps_a_reason_or_location_made_of_message_content() -> None:
    # A label key is user content and ends up in the error's location.
    raw = orjson.dumps({"kind": "metric", "ts": 1717243100, "name": "n", "value": 1,
                        "labels": {"k" * 3_000_000: 1}})  # fmt: skip
    (r,) = decode_models([raw], now=NOW, max_bytes=1 << 23)[1]
    dl = to_dead_letter(r, topic="t", now=NOW)
    assert len(r.reason) <= 1000 and len(r.location) <= 256
    assert len(dl.reason) <= 2000 and len(dl.location) <= 2000
    assert len(dump_json(dl)) < 1_000_000
