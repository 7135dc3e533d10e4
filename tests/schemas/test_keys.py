"""Every publisher keys events by one rule, so a detector's inputs meet in one engine."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.keys import key_of, partition_key
from schemas.models import FeedbackEvent, GpuSample, InferenceEvent, MetricSample

TS = "2024-06-03T08:00:00Z"
INFERENCE: dict[str, Any] = {
    "kind": "inference",
    "ts": TS,
    "gateway": "gw-a",
    "model": "llama-3-8b",
    "model_version": "v2",
    "request_id": "r1",
    "status": "ok",
    "latency_ms": 900.0,
    "ttft_ms": 120.0,
}


def test_dict_and_model_keys_agree_for_inference() -> None:
    event = InferenceEvent.model_validate(INFERENCE)
    assert partition_key("inference", INFERENCE) == key_of(event) == "llama-3-8b"


def test_versions_and_gateways_of_a_model_share_a_key() -> None:
    other = {**INFERENCE, "gateway": "gw-b", "model_version": "v3"}
    assert partition_key("inference", other) == partition_key("inference", INFERENCE)
    assert partition_key("inference", {**INFERENCE, "model": "mixtral"}) != "llama-3-8b"


def test_gpu_samples_are_keyed_by_host() -> None:
    sample = {"host": "node-1", "gpu_uuid": "GPU-1"}
    assert partition_key("gpu", sample) == "node-1"
    # model_construct skips validation: a sample with only the fields key_of reads.
    partial: dict[str, Any] = {"host": "node-1", "gpu_uuid": "GPU-1"}
    assert key_of(GpuSample.model_construct(**partial)) == "node-1"


def test_metric_key_ignores_label_order() -> None:
    a = {"name": "vllm:e2e", "labels": {"model": "m", "pod": "p"}}
    b = {"name": "vllm:e2e", "labels": {"pod": "p", "model": "m"}}
    assert partition_key("metric", a) == partition_key("metric", b)
    sample = MetricSample.model_validate({"ts": TS, "value": 1.0, **a})
    assert key_of(sample) == partition_key("metric", a)


def test_missing_key_field_names_the_field() -> None:
    with pytest.raises(ValueError, match="model"):
        partition_key("inference", {"gateway": "gw-a"})
    with pytest.raises(ValueError, match="kind"):
        partition_key("bogus", INFERENCE)


def test_feedback_is_keyed_by_model() -> None:
    fb = FeedbackEvent.model_validate(
        {"ts": TS, "request_id": "r1", "model": "m", "model_version": "v1", "score": 1.0}
    )
    assert key_of(fb) == "m"
