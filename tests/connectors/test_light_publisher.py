"""The light publisher install: a gateway publishes with pydantic, orjson and confluent-kafka.

``pip install llmwatch`` (no extra) gives exactly those three; everything the worker,
notifier and CLI need is the ``service`` extra. The publishing path is run in a child
interpreter where every service-only package is made unimportable, against the
embedded broker; the parent reads the events back.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

from schemas.models import InferenceEvent
from tests.conftest import Record

ROOT = Path(__file__).resolve().parents[2]
SERVICE_ONLY = (
    "faust",
    "numpy",
    "numba",
    "river",
    "matplotlib",
    "rocksdict",
    "msgspec",
    "prometheus_client",
    "aiohttp",
    "slack_sdk",
    "yaml",
    "rich",
    "pydantic_settings",
    "cramjam",
    "pynvml",
)

CHILD = """
import importlib.abc, sys
BLOCKED = set(sys.argv[3].split(","))

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not in the light install")
        return None

sys.meta_path.insert(0, Block())
from datetime import UTC, datetime
from connectors.gateway import GatewayPublisher
from schemas.models import InferenceEvent, Status

pub = GatewayPublisher({"bootstrap.servers": sys.argv[1]}, inference_topic=sys.argv[2])
now = datetime.now(UTC)
for i in range(1000):
    pub.publish(InferenceEvent(ts=now, gateway="gw-1", model="m", model_version="v1",
                               request_id=f"r{i}", status=Status.OK, latency_ms=100.0 + i))
assert pub.close(15) == 0
st = pub.stats()
print(st.delivered, st.dropped, sorted(m for m in BLOCKED if m in sys.modules))
"""


def _requirement_names(reqs: list[str]) -> set[str]:
    return {r.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip() for r in reqs}


def test_base_dependencies_are_what_publishing_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _requirement_names(project["dependencies"]) == {"pydantic", "orjson", "confluent-kafka"}
    service = _requirement_names(project["optional-dependencies"]["service"])
    assert {"faust-streaming", "numba", "river", "numpy", "matplotlib"} <= service
    # make installs the service extra, so `make demo` and `make test` are unchanged
    assert "'.[service,dev]'" in (ROOT / "Makefile").read_text()


def test_gateway_publishes_without_any_service_package(
    embedded_broker: str, topic_name: str, consume_all: Callable[..., list[Record]]
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, embedded_broker, topic_name, ",".join(SERVICE_ONLY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[0] == "1000 0 []"
    records = consume_all(topic_name, expected=1000)
    assert len(records) == 1000
    assert {InferenceEvent.model_validate_json(r.value).model for r in records} == {"m"}
    assert all(r.key == b"m" for r in records)
