"""The worker refuses source topics whose partition counts would mix engines' state.

Real Apache Kafka 0.9.0.1 (the mock cluster auto-creates every topic with the same
count, so only a real broker can hold a mismatch).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from stream.app import engine_table
from stream.kafka09 import PartitionMismatch, check_copartitioned
from stream.settings import Settings
from tests.integration.kafka09 import Kafka09

pytestmark = [pytest.mark.integration, pytest.mark.kafka09]

REPO = Path(__file__).resolve().parents[2]


def _settings(broker: Kafka09, stem: str) -> Settings:
    return Settings(
        bootstrap_servers=broker.bootstrap,
        broker_api_version="0.9",
        partitions=2,
        topic_inference=f"{stem}.inference",
        topic_gpu=f"{stem}.gpu",
        topic_metrics=f"{stem}.metrics",
        topic_feedback=f"{stem}.feedback",
    )


def test_equal_counts_pass_and_a_mismatch_is_named(kafka09: Kafka09) -> None:
    stem = f"cp{uuid.uuid4().hex[:6]}"
    settings = _settings(kafka09, stem)
    kafka09.create_topics([settings.topic_inference, settings.topic_metrics], partitions=2)
    tables = [engine_table("llmwatch")]
    counts = check_copartitioned(settings, "llmwatch", tables)
    assert counts == {settings.topic_inference: 2, settings.topic_metrics: 2}

    kafka09.create_topics([settings.topic_gpu], partitions=3)
    with pytest.raises(PartitionMismatch) as err:
        check_copartitioned(settings, "llmwatch", tables)
    assert f"{settings.topic_gpu} has 3" in str(err.value)
    assert f"{settings.topic_inference} has 2" in str(err.value)

    env = {
        **os.environ,
        "LLMWATCH_BOOTSTRAP_SERVERS": kafka09.bootstrap,
        "LLMWATCH_BROKER_API_VERSION": "0.9",
        "LLMWATCH_PARTITIONS": "2",
        "LLMWATCH_STORE": "memory://",
        "LLMWATCH_TOPIC_INFERENCE": settings.topic_inference,
        "LLMWATCH_TOPIC_GPU": settings.topic_gpu,
        "LLMWATCH_TOPIC_METRICS": settings.topic_metrics,
        "LLMWATCH_TOPIC_FEEDBACK": settings.topic_feedback,
    }
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", "worker"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"{settings.topic_gpu} has 3" in done.stderr + done.stdout
