"""One compat module: every private Faust/aiokafka hook is checked at start-up, and a
hook an upgrade removed stops the worker with the package, version and hook named."""

from __future__ import annotations

import inspect

import aiokafka
import faust.transport.consumer
import pytest
from faust.tables.recovery import Recovery

from stream import compat
from stream.app import WorkerApp, create_app
from stream.settings import Settings


def test_every_hook_exists_in_the_installed_versions() -> None:
    assert compat.missing(["always", "legacy", "rocksdb"]) == []


def test_a_removed_method_hook_stops_start_up_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(faust.transport.consumer.Consumer, "_new_offset")
    with pytest.raises(compat.IncompatibleDependency) as err:
        create_app(Settings(bootstrap_servers="127.0.0.1:9", store="memory://"))
    text = str(err.value)
    assert f"faust-streaming {compat.installed('faust-streaming')}" in text
    assert "faust.transport.consumer.Consumer._new_offset is gone" in text


def test_a_changed_signature_of_an_overridden_method_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # BatchConsumer overrides _wait_next_records(timeout): an upstream that renamed or
    # added a parameter would call the override wrongly, or not at all.
    async def upstream(self: object, timeout: float, *, max_records: int = 0) -> None:
        return None

    monkeypatch.setattr(faust.transport.consumer.Consumer, "_wait_next_records", upstream)
    with pytest.raises(compat.IncompatibleDependency) as err:
        create_app(Settings(bootstrap_servers="127.0.0.1:9", store="memory://"))
    assert "Consumer._wait_next_records is gone or no longer takes (timeout)" in str(err.value)


def test_a_removed_instance_hook_is_found_in_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    # Attributes set in __init__ are looked for in the class source: rename one there.
    real = inspect.getsource

    def without(obj: object) -> str:
        return real(obj).replace("_active_events_received_at", "_renamed_upstream")  # type: ignore[arg-type]

    monkeypatch.setattr(inspect, "getsource", without)
    gone = compat.missing()
    assert [(h.owner, h.attr) for h in gone] == [
        ("faust.tables.recovery:Recovery", "_active_events_received_at")
    ]
    assert Recovery  # type: ignore[truthy-function]  # the class itself still imports


def test_legacy_hooks_are_checked_only_for_legacy_brokers(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiokafka.consumer.fetcher import Fetcher

    monkeypatch.delattr(Fetcher, "end_offsets")
    compat.check_hooks()  # a modern broker does not need it
    with pytest.raises(compat.IncompatibleDependency, match=r"aiokafka [\d.]+: .*end_offsets"):
        compat.check_hooks(legacy=True)


def test_the_kafka09_offsets_shim_is_bound_to_one_consumer_only() -> None:
    before = aiokafka.AIOKafkaConsumer.end_offsets
    settings = Settings(
        bootstrap_servers="127.0.0.1:9", store="memory://", broker_api_version="0.9"
    )
    app = create_app(settings)
    assert isinstance(app, WorkerApp) and app.diverted is not None  # narrows for the checker
    assert app.diverted[3] is True  # the worker's consumer will get the shim
    assert aiokafka.AIOKafkaConsumer.end_offsets is before  # the process keeps aiokafka's

    class Client:
        _request_timeout_ms = 1234

        class _fetcher:
            @staticmethod
            async def end_offsets(partitions: object, timeout: int) -> tuple[object, int]:
                return partitions, timeout

            beginning_offsets = end_offsets

    import asyncio

    one, other = Client(), Client()
    compat.legacy_offsets(one)
    assert asyncio.run(one.end_offsets(["tp"])) == (["tp"], 1234)  # type: ignore[attr-defined]
    assert not hasattr(other, "end_offsets")
