"""GPU agent against a fake NVML module (real NVML needs a GPU), publishing into the
embedded broker, plus the command's no-driver exit."""

from __future__ import annotations

import argparse
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from connectors.gpu_agent import GpuAgent, GpuPublisher
from connectors.nvml import NvmlReader, NvmlUnavailable
from schemas.models import GpuSample
from stream.commands import gpu_agent as gpu_command
from tests.conftest import Record

XID_EVENT = 8
MIB = 1024 * 1024


@dataclass
class FakeGpu:
    uuid: str
    util: tuple[int, int] = (55, 30)
    mem: tuple[int, int] = (40_000 * MIB, 81_559 * MIB)
    temp: int = 61
    power_mw: int = 350_000
    limit_mw: int = 700_000
    sm_mhz: int = 1755
    reasons: int = 0x4  # SW power cap
    ecc: tuple[int, int] = (3, 0)
    replay: int = 2
    unsupported: set[str] = field(default_factory=set)
    no_events: bool = False


class FakeNvml(ModuleType):
    """The attributes of the fake module that the tests set or read by name; the rest
    (constants, NVMLError_* classes, per-device getters) are set with setattr."""

    NVMLError: type[Exception]
    events: queue.Queue[Any]
    shutdowns: int
    nvmlInit: Callable[[], None]
    nvmlShutdown: Callable[[], None]
    nvmlDeviceGetCount: Callable[[], int]
    nvmlDeviceGetHandleByIndex: Callable[[int], FakeGpu]
    nvmlDeviceGetUUID: Callable[[FakeGpu], bytes]
    nvmlEventSetCreate: Callable[[], object]
    nvmlEventSetFree: Callable[[object], None]
    nvmlDeviceRegisterEvents: Callable[[FakeGpu, int, object], None]
    nvmlEventSetWait: Callable[[object, int], Any]


def fake_nvml(
    gpus: list[FakeGpu], init_error: str | None = None, old_driver: bool = False
) -> FakeNvml:
    """A stand-in for pynvml with the functions, constants and errors the agent uses."""
    m = FakeNvml("fake_pynvml")

    class NVMLError(Exception):
        pass

    errors = ["NotSupported", "FunctionNotFound", "LibraryNotFound", "DriverNotLoaded", "Timeout"]
    for name in errors:
        setattr(m, f"NVMLError_{name}", type(f"NVMLError_{name}", (NVMLError,), {}))
    m.NVMLError = NVMLError
    consts = {
        "NVML_TEMPERATURE_GPU": 0,
        "NVML_CLOCK_SM": 1,
        "NVML_MEMORY_ERROR_TYPE_CORRECTED": 0,
        "NVML_MEMORY_ERROR_TYPE_UNCORRECTED": 1,
        "NVML_VOLATILE_ECC": 0,
        "nvmlEventTypeXidCriticalError": XID_EVENT,
    }
    for k, v in consts.items():
        setattr(m, k, v)
    events: queue.Queue[Any] = queue.Queue()
    m.events = events
    m.shutdowns = 0

    def call(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(h: FakeGpu, *args: Any) -> Any:
            if name in h.unsupported:
                raise m.NVMLError_NotSupported("Not Supported")
            return fn(h, *args)

        return wrapped

    def init() -> None:
        if init_error:
            raise getattr(m, f"NVMLError_{init_error}")(init_error)

    def shutdown() -> None:
        m.shutdowns += 1

    def register(h: FakeGpu, kind: int, es: object) -> None:
        if h.no_events:
            raise m.NVMLError_NotSupported("Not Supported")

    def wait(es: object, timeout_ms: int) -> Any:
        try:
            return events.get(timeout=timeout_ms / 1000)
        except queue.Empty:
            raise m.NVMLError_Timeout("Timeout") from None

    m.nvmlInit = init
    m.nvmlShutdown = shutdown
    m.nvmlDeviceGetCount = lambda: len(gpus)
    m.nvmlDeviceGetHandleByIndex = lambda i: gpus[i]
    m.nvmlDeviceGetUUID = lambda h: h.uuid.encode()  # older bindings return bytes
    fns: dict[str, Callable[..., Any]] = {
        "nvmlDeviceGetUtilizationRates": lambda h: SimpleNamespace(gpu=h.util[0], memory=h.util[1]),
        "nvmlDeviceGetMemoryInfo": lambda h: SimpleNamespace(used=h.mem[0], total=h.mem[1]),
        "nvmlDeviceGetTemperature": lambda h, kind: h.temp,
        "nvmlDeviceGetPowerUsage": lambda h: h.power_mw,
        "nvmlDeviceGetEnforcedPowerLimit": lambda h: h.limit_mw,
        "nvmlDeviceGetClockInfo": lambda h, kind: h.sm_mhz,
        "nvmlDeviceGetCurrentClocksThrottleReasons": lambda h: h.reasons,
        "nvmlDeviceGetTotalEccErrors": lambda h, kind, counter: h.ecc[kind],
        "nvmlDeviceGetPcieReplayCounter": lambda h: h.replay,
    }
    if not old_driver:
        fns["nvmlDeviceGetCurrentClocksEventReasons"] = lambda h: h.reasons
    for name, fn in fns.items():
        setattr(m, name, call(name, fn))
    m.nvmlEventSetCreate = lambda: object()
    m.nvmlEventSetFree = lambda es: None
    m.nvmlDeviceRegisterEvents = register
    m.nvmlEventSetWait = wait
    return m


def xid_event(gpu: FakeGpu, xid: int) -> SimpleNamespace:
    return SimpleNamespace(eventType=XID_EVENT, eventData=xid, device=gpu)


def clock() -> float:
    return 1_714_564_800.0


def test_sample_units_and_values() -> None:
    gpus = [FakeGpu("GPU-aaaa")]
    agent = GpuAgent(lambda s: None, fake_nvml(gpus), host="node-1", clock=clock, watch_xid=False)
    agent.start()
    [s] = agent.poll_once()
    assert s.gpu_uuid == "GPU-aaaa" and s.gpu_index == 0 and s.host == "node-1"
    assert (s.sm_util_pct, s.mem_util_pct) == (55.0, 30.0)
    assert (s.mem_used_mib, s.mem_total_mib) == (40_000.0, 81_559.0)
    assert (s.power_w, s.power_limit_w, s.temp_c, s.sm_clock_mhz) == (350.0, 700.0, 61.0, 1755.0)
    assert (s.clocks_event_reasons, s.ecc_sbe_total, s.ecc_dbe_total) == (4, 3, 0)
    assert s.pcie_replay_total == 2 and s.xid is None
    assert s.ts.timestamp() == clock()
    agent.stop()


def test_unsupported_calls_give_defaults_and_the_agent_goes_on() -> None:
    weak = FakeGpu(
        "GPU-bbbb",
        unsupported={
            "nvmlDeviceGetEnforcedPowerLimit",
            "nvmlDeviceGetTotalEccErrors",
            "nvmlDeviceGetPcieReplayCounter",
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
        },
    )
    agent = GpuAgent(lambda s: None, fake_nvml([FakeGpu("GPU-aaaa"), weak]), watch_xid=False)
    agent.start()
    full, partial = agent.poll_once()
    assert full.power_limit_w == 700.0 and full.ecc_sbe_total == 3
    assert (partial.power_limit_w, partial.ecc_sbe_total, partial.pcie_replay_total) == (0, 0, 0)
    assert partial.clocks_event_reasons == 0
    assert partial.power_w == 350.0  # supported calls still read
    assert "nvmlDeviceGetPcieReplayCounter@1" in agent.reader.unsupported
    assert not any(u.endswith("@0") for u in agent.reader.unsupported)


def test_old_driver_falls_back_to_throttle_reasons() -> None:
    reader = NvmlReader(fake_nvml([FakeGpu("GPU-old", reasons=0x20)], old_driver=True))
    [dev] = reader.open()
    assert reader.clocks_event_reasons(dev) == 0x20


@pytest.mark.parametrize("error", ["LibraryNotFound", "DriverNotLoaded"])
def test_no_driver_is_nvml_unavailable(error: str) -> None:
    with pytest.raises(NvmlUnavailable, match="no NVIDIA driver"):
        NvmlReader(fake_nvml([], init_error=error)).open()


def test_no_gpus_is_nvml_unavailable() -> None:
    nvml = fake_nvml([])
    with pytest.raises(NvmlUnavailable, match="no GPUs"):
        NvmlReader(nvml).open()
    assert nvml.shutdowns == 1


def test_command_exits_nonzero_with_one_line_without_a_driver(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = argparse.Namespace(
        interval=1.0,
        duration=None,
        bootstrap=None,
        topic=None,
        host=None,
        no_xid=False,
        stdout=True,
    )
    rc = gpu_command.run(args, nvml=fake_nvml([], init_error="DriverNotLoaded"))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == gpu_command.EXIT_NO_GPU
    assert len(err) == 1 and err[0].startswith("llmwatch gpu-agent: no NVIDIA driver")


def test_xid_events_ride_on_the_next_sample_of_that_gpu() -> None:
    gpus = [FakeGpu("GPU-aaaa"), FakeGpu("GPU-bbbb"), FakeGpu("GPU-cccc", no_events=True)]
    nvml = fake_nvml(gpus)
    agent = GpuAgent(lambda s: None, nvml, clock=clock, xid_wait_ms=50)
    agent.start()
    try:
        assert agent.xids is not None and agent.xids.watched == [0, 1]
        nvml.events.put(xid_event(gpus[1], 79))
        nvml.events.put(xid_event(gpus[1], 48))
        assert agent.xids.woke.wait(5.0)
        # Both events may need a moment: wait for the second one, bounded.
        for _ in range(100):
            if len(agent.xids._pending.get("GPU-bbbb", [])) == 2:
                break
            agent.xids.woke.clear()
            agent.xids.woke.wait(0.05)
        samples = agent.poll_once()
        by_gpu = [(s.gpu_uuid, s.xid) for s in samples]
        assert by_gpu == [
            ("GPU-aaaa", None),
            ("GPU-bbbb", 79),
            ("GPU-bbbb", 48),
            ("GPU-cccc", None),
        ]
        assert [s.xid for s in agent.poll_once()] == [None, None, None]
    finally:
        agent.stop()


def test_run_loop_stops_on_request() -> None:
    stop = threading.Event()
    seen: list[GpuSample] = []

    def publish(s: GpuSample) -> None:
        seen.append(s)
        if len(seen) >= 6:
            stop.set()

    agent = GpuAgent(
        publish, fake_nvml([FakeGpu("GPU-aaaa"), FakeGpu("GPU-bbbb")]), watch_xid=False
    )
    agent.start()
    assert agent.run(interval_s=0.001, stop=stop) == 6
    assert {s.gpu_uuid for s in seen} == {"GPU-aaaa", "GPU-bbbb"}


def test_samples_published_to_the_broker_keyed_by_host(
    embedded_broker: str, topic_name: str, consume_all: Callable[..., list[Record]]
) -> None:
    gpus = [FakeGpu(f"GPU-{i:04d}") for i in range(3)]
    pub = GpuPublisher({"bootstrap.servers": embedded_broker}, topic_name)
    agent = GpuAgent(pub, fake_nvml(gpus), host="node-7", clock=clock, watch_xid=False)
    agent.start()
    for _ in range(4):
        agent.poll_once()
    assert pub.flush(10) == 0
    assert pub.stats().delivered == 12
    records = consume_all(topic_name, expected=12)
    assert len(records) == 12
    parts: dict[bytes | None, set[int]] = {}
    for r in records:
        sample = GpuSample.model_validate_json(r.value)
        # A host's GPUs meet in one engine: the per-host checks need all of them.
        assert r.key == b"node-7" and sample.host == "node-7"
        parts.setdefault(r.key, set()).add(r.partition)
    assert set(parts) == {b"node-7"}
    assert all(len(p) == 1 for p in parts.values())
    assert {GpuSample.model_validate_json(r.value).gpu_uuid for r in records} == {
        g.uuid for g in gpus
    }
