"""Smoke-check the GPU agent against a real NVIDIA driver (run by hand on a GPU host).

Opens NVML through the agent's own reader, records which NVML calls the driver
answers, publishes samples for ``--seconds`` to an embedded broker while an optional
load (``--load``: a torch matmul loop) warms the GPU, reads them back, validates every
record with the wire decoder and prints one JSON summary. No test in ``make test``
needs a GPU; this is the check an operator (or a session lent a GPU) runs once.

    python scripts/gpu_agent_smoke.py --seconds 15 --load --out summary.json
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from connectors.gpu_agent import GpuAgent, GpuPublisher
from connectors.nvml import load_nvml
from schemas.decode import decode_models

_TOPIC = "llmwatch.gpu"
_PROBES = (
    ("nvmlDeviceGetUtilizationRates", ()),
    ("nvmlDeviceGetMemoryInfo", ()),
    ("nvmlDeviceGetTemperature", ("NVML_TEMPERATURE_GPU",)),
    ("nvmlDeviceGetPowerUsage", ()),
    ("nvmlDeviceGetEnforcedPowerLimit", ()),
    ("nvmlDeviceGetClockInfo", ("NVML_CLOCK_SM",)),
    ("nvmlDeviceGetCurrentClocksEventReasons", ()),
    ("nvmlDeviceGetCurrentClocksThrottleReasons", ()),
    ("nvmlDeviceGetPcieReplayCounter", ()),
)


def probe_calls(nvml: Any) -> dict[str, str]:
    """Which NVML calls this driver answers on GPU 0 ('ok' or the error's text)."""
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    out: dict[str, str] = {}
    for name, consts in _PROBES:
        fn = getattr(nvml, name, None)
        if fn is None:
            out[name] = "absent in this pynvml"
            continue
        try:
            fn(handle, *(getattr(nvml, c) for c in consts))
            out[name] = "ok"
        except Exception as exc:  # the driver's answer is the finding
            out[name] = f"{type(exc).__name__}: {exc}"
    return out


def gpu_load(stop: threading.Event) -> None:
    import torch  # only on the GPU host; not a project dependency

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    while not stop.is_set():
        for _ in range(50):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()


def read_back(bootstrap: str, expected: int, timeout_s: float = 20.0) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "smoke", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([_TOPIC])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < expected and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None and msg.value() is not None:
            values.append(bytes(msg.value()))
    consumer.close()
    return values


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--load", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    broker = Producer({"test.mock.num.brokers": 1, "log_level": 4})
    brokers = broker.list_topics(timeout=10).brokers
    bootstrap = ",".join(f"{b.host}:{b.port}" for b in brokers.values())
    nvml = load_nvml()
    publisher = GpuPublisher({"bootstrap.servers": bootstrap})
    agent = GpuAgent(publisher, nvml, host="device-smoke")
    devices = agent.start()
    calls = probe_calls(nvml)
    stop = threading.Event()
    loader = threading.Thread(target=gpu_load, args=(stop,), daemon=True) if args.load else None
    if loader is not None:
        loader.start()
    t0 = time.perf_counter()
    samples = agent.run(args.interval, duration_s=args.seconds)
    wall = time.perf_counter() - t0
    stop.set()
    xid_watch = agent.xids is not None
    agent.stop()
    publisher.flush()
    raw = read_back(bootstrap, samples)
    good, bad = decode_models(raw, kind="gpu", now=time.time())
    summary = {
        "driver": nvml.nvmlSystemGetDriverVersion(),
        "devices": [str(d) for d in devices],
        "nvml_calls": calls,
        "xid_watcher_started": xid_watch,
        "samples_published": samples,
        "samples_read_back": len(raw),
        "samples_valid": len(good),
        "rejects": [r.reason for r in bad][:5],
        "polls_per_s": round(samples / wall, 2),
        "ranges": {
            f: [min(getattr(m, f) for m in good), max(getattr(m, f) for m in good)]
            for f in ("sm_util_pct", "power_w", "temp_c", "mem_used_mib", "sm_clock_mhz")
        }
        if good
        else {},
        "clocks_event_reasons_seen": sorted({getattr(m, "clocks_event_reasons", 0) for m in good}),
        "first_sample": json.loads(raw[0]) if raw else None,
    }
    text = json.dumps(summary, indent=2, default=str)
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
