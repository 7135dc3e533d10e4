"""The GPU agent: sample every GPU through NVML at an interval and publish ``GpuSample``s.

Samples are keyed by host (``schemas.keys``) so a host's GPUs meet in one worker. An
XID critical error wakes the loop at once and rides on the next sample of that GPU
(one sample per XID, so a burst is not folded into one).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import ModuleType

from connectors.kafka import KeyedProducer, PublisherStats
from connectors.nvml import Device, NvmlReader, XidWatcher
from schemas.keys import key_of
from schemas.models import GpuSample

DEFAULT_GPU_TOPIC = "llmwatch.gpu"


class GpuPublisher:
    """Non-blocking publisher of ``GpuSample``s, keyed by host."""

    def __init__(self, client: Mapping[str, str], topic: str = DEFAULT_GPU_TOPIC) -> None:
        self.topic = topic
        self._producer = KeyedProducer(client, {"linger.ms": 50})

    def __call__(self, sample: GpuSample) -> bool:
        return self._producer.send(self.topic, key_of(sample), sample)

    def flush(self, timeout_s: float = 10.0) -> int:
        return self._producer.flush(timeout_s)

    def close(self, timeout_s: float = 10.0) -> int:
        return self._producer.close(timeout_s)

    def stats(self) -> PublisherStats:
        return self._producer.stats()


class GpuAgent:
    """Owns the NVML session and the XID watcher; ``run`` loops, ``poll_once`` is one tick."""

    def __init__(
        self,
        publish: Callable[[GpuSample], object],
        nvml: ModuleType | None = None,
        *,
        host: str | None = None,
        clock: Callable[[], float] = time.time,
        watch_xid: bool = True,
        xid_wait_ms: int = 500,
    ) -> None:
        self.reader = NvmlReader(nvml)
        self.publish = publish
        self.host = host or socket.gethostname()
        self.clock = clock
        self.watch_xid = watch_xid
        self.xid_wait_ms = xid_wait_ms
        self.devices: list[Device] = []
        self.xids: XidWatcher | None = None
        self.published = 0

    def start(self) -> list[Device]:
        """Open NVML (raises ``NvmlUnavailable``) and start XID watching where supported."""
        self.devices = self.reader.open()
        if self.watch_xid:
            watcher = XidWatcher(self.reader.nvml, self.devices, self.xid_wait_ms)
            if watcher.start():
                self.xids = watcher
        return self.devices

    def stop(self) -> None:
        if self.xids is not None:
            self.xids.stop()
            self.xids = None
        self.reader.close()

    def poll_once(self) -> list[GpuSample]:
        ts = datetime.fromtimestamp(self.clock(), UTC)
        if self.xids is not None:
            self.xids.woke.clear()
        out: list[GpuSample] = []
        for device in self.devices:
            xids = self.xids.take(device.uuid) if self.xids is not None else []
            sample = self.reader.read(device, ts, self.host, xids[0] if xids else None)
            out.append(sample)
            out.extend(sample.model_copy(update={"xid": x}) for x in xids[1:])
        for sample in out:
            self.publish(sample)
        self.published += len(out)
        return out

    def run(
        self,
        interval_s: float,
        duration_s: float | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Poll until ``stop`` is set or ``duration_s`` passes; returns samples published."""
        if interval_s <= 0:
            raise ValueError("interval: must be positive")
        halt = stop if stop is not None else threading.Event()
        end = None if duration_s is None else time.monotonic() + duration_s
        next_tick = time.monotonic()
        while not halt.is_set():
            now = time.monotonic()
            if end is not None and now >= end:
                break
            due = now >= next_tick
            if due or (self.xids is not None and self.xids.woke.is_set()):
                self.poll_once()
                if due:  # an XID-triggered sample does not shift the regular schedule
                    next_tick = max(next_tick + interval_s, now)
            target = next_tick if end is None else min(next_tick, end)
            self._wait(target - time.monotonic(), halt)
        return self.published

    def _wait(self, seconds: float, halt: threading.Event) -> None:
        # Wake early for an XID (published at once) or a stop request.
        woke = self.xids.woke if self.xids is not None else halt
        deadline = time.monotonic() + seconds
        while not halt.is_set() and not (self.xids is not None and woke.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            woke.wait(min(left, 0.2))
