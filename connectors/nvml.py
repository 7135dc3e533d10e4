"""NVML reads for the GPU agent: one ``GpuSample`` per device, plus an XID event watcher.

The NVML module is injected (``pynvml`` from nvidia-ml-py by default) so tests pass
a small fake. A call a device does not support (``NVMLError_NotSupported``, or a
function the driver lacks) yields a default and is remembered in ``unsupported``;
it never stops the agent. No driver or no library raises ``NvmlUnavailable``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any, TypeVar

from schemas.models import GpuSample

T = TypeVar("T")
_MIB = 1024.0 * 1024.0


class NvmlUnavailable(RuntimeError):
    """No NVIDIA driver, no NVML library, or no GPU: the agent has nothing to watch."""


def load_nvml() -> ModuleType:
    try:
        import pynvml
    except ImportError as exc:  # pragma: no cover - a dependency of llmwatch
        raise NvmlUnavailable(f"the nvidia-ml-py package is not installed ({exc})") from None
    module: ModuleType = pynvml
    return module


@dataclass(frozen=True)
class Device:
    index: int
    uuid: str
    handle: Any


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlReader:
    """Opens NVML, lists devices, reads one sample per device."""

    def __init__(self, nvml: ModuleType | None = None) -> None:
        self.nvml = nvml if nvml is not None else load_nvml()
        self.unsupported: set[str] = set()  # "<function>@<gpu index>", for one log line each
        self._skip = (self.nvml.NVMLError_NotSupported, self.nvml.NVMLError_FunctionNotFound)
        self._open = False

    def open(self) -> list[Device]:
        n = self.nvml
        try:
            n.nvmlInit()
        except (n.NVMLError_LibraryNotFound, n.NVMLError_DriverNotLoaded) as exc:
            raise NvmlUnavailable(f"no NVIDIA driver or GPU on this machine: {exc}") from None
        except n.NVMLError as exc:
            raise NvmlUnavailable(f"NVML failed to start: {exc}") from None
        self._open = True
        count = int(n.nvmlDeviceGetCount())
        if count == 0:
            self.close()
            raise NvmlUnavailable("NVML sees no GPUs on this machine")
        devices = []
        for i in range(count):
            handle = n.nvmlDeviceGetHandleByIndex(i)
            devices.append(Device(i, _text(n.nvmlDeviceGetUUID(handle)), handle))
        return devices

    def close(self) -> None:
        if self._open:
            self._open = False
            self.nvml.nvmlShutdown()

    def _get(self, device: Device, name: str, default: T, *args: Any) -> Any:
        fn: Callable[..., Any] | None = getattr(self.nvml, name, None)
        if fn is None:
            self.unsupported.add(f"{name}@{device.index}")
            return default
        try:
            return fn(device.handle, *args)
        except self._skip:
            self.unsupported.add(f"{name}@{device.index}")
            return default

    def clocks_event_reasons(self, device: Device) -> int:
        # Renamed from "throttle reasons" in driver 535; older drivers only have the old name.
        missing = object()
        value = self._get(device, "nvmlDeviceGetCurrentClocksEventReasons", missing)
        if value is missing:
            value = self._get(device, "nvmlDeviceGetCurrentClocksThrottleReasons", 0)
        return int(value)

    def read(self, device: Device, ts: datetime, host: str, xid: int | None = None) -> GpuSample:
        n = self.nvml
        util = self._get(device, "nvmlDeviceGetUtilizationRates", None)
        mem = self._get(device, "nvmlDeviceGetMemoryInfo", None)
        total_mib = float(mem.total) / _MIB if mem is not None and mem.total > 0 else 1.0
        used_mib = min(float(mem.used) / _MIB, total_mib) if mem is not None else 0.0
        ecc = (n.NVML_MEMORY_ERROR_TYPE_CORRECTED, n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)
        return GpuSample(
            ts=ts,
            host=host,
            gpu_index=device.index,
            gpu_uuid=device.uuid,
            sm_util_pct=float(util.gpu) if util is not None else 0.0,
            mem_util_pct=float(util.memory) if util is not None else 0.0,
            mem_used_mib=used_mib,
            mem_total_mib=total_mib,
            temp_c=float(self._get(device, "nvmlDeviceGetTemperature", 0, n.NVML_TEMPERATURE_GPU)),
            power_w=self._get(device, "nvmlDeviceGetPowerUsage", 0) / 1000.0,
            power_limit_w=self._get(device, "nvmlDeviceGetEnforcedPowerLimit", 0) / 1000.0,
            sm_clock_mhz=float(self._get(device, "nvmlDeviceGetClockInfo", 0, n.NVML_CLOCK_SM)),
            clocks_event_reasons=self.clocks_event_reasons(device),
            xid=xid,
            ecc_sbe_total=int(
                self._get(device, "nvmlDeviceGetTotalEccErrors", 0, ecc[0], n.NVML_VOLATILE_ECC)
            ),
            ecc_dbe_total=int(
                self._get(device, "nvmlDeviceGetTotalEccErrors", 0, ecc[1], n.NVML_VOLATILE_ECC)
            ),
            pcie_replay_total=int(self._get(device, "nvmlDeviceGetPcieReplayCounter", 0)),
        )


class XidWatcher:
    """Collects XID critical errors from NVML events on a background thread.

    ``take(uuid)`` hands over (and forgets) the XIDs seen on one GPU; ``woke`` is set
    whenever one arrives so the agent can publish at once instead of at the next tick.
    """

    def __init__(self, nvml: ModuleType, devices: list[Device], wait_ms: int = 500) -> None:
        self.nvml = nvml
        self.devices = devices
        self.wait_ms = wait_ms
        self.woke = threading.Event()
        self.watched: list[int] = []  # indices of devices that deliver XID events
        self.errors = 0
        self._pending: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._set: Any = None

    def start(self) -> bool:
        """Register for XID events; False if no device supports them (nothing is started)."""
        n = self.nvml
        try:
            self._set = n.nvmlEventSetCreate()
        except n.NVMLError:
            return False
        for d in self.devices:
            try:
                n.nvmlDeviceRegisterEvents(d.handle, n.nvmlEventTypeXidCriticalError, self._set)
            except n.NVMLError:
                continue  # NotSupported (e.g. some virtualised GPUs): that device is polled only
            self.watched.append(d.index)
        if not self.watched:
            n.nvmlEventSetFree(self._set)
            self._set = None
            return False
        self._thread = threading.Thread(target=self._loop, name="llmwatch-xid", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0 + self.wait_ms / 1000.0)
            self._thread = None
        if self._set is not None:
            self.nvml.nvmlEventSetFree(self._set)
            self._set = None

    def pump_once(self) -> bool:
        """Wait up to ``wait_ms`` for one event; True if an XID was recorded."""
        n = self.nvml
        try:
            data = n.nvmlEventSetWait(self._set, self.wait_ms)
        except n.NVMLError_Timeout:
            return False
        if not int(data.eventType) & int(n.nvmlEventTypeXidCriticalError):
            return False
        uuid = _text(n.nvmlDeviceGetUUID(data.device))
        with self._lock:
            self._pending.setdefault(uuid, []).append(int(data.eventData))
        self.woke.set()
        return True

    def take(self, uuid: str) -> list[int]:
        with self._lock:
            return self._pending.pop(uuid, [])

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.pump_once()
            except self.nvml.NVMLError:
                # A transient driver error must not end XID watching; back off a little.
                self.errors += 1
                self._stop.wait(1.0)
