"""Pieces of the live demo: the demo fleet, a worker subprocess, incident timing, the summary."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from schemas.models import AlertStatus
from stream.commands.alerts import Seen
from stream.simulate import FleetSpec, Incident, IncidentKind
from stream.simulate.publish import Event
from stream.simulate.spec import Fleet

# Incidents that read well on a console in a couple of minutes, in this order.
DEMO_KINDS = (
    (IncidentKind.ERROR_BURST, 2.0),
    (IncidentKind.GPU_XID, 1.0),
    (IncidentKind.LATENCY_REGRESSION, 1.5),
    (IncidentKind.TTFT_SPIKE, 1.5),
    (IncidentKind.GPU_THROTTLE, 1.5),
)
# An incident's alert counts if it starts within this event-time window around it.
_EARLY_S = 30.0
_GRACE_S = 300.0


def demo_fleet(
    seed: int, span_s: float, rate: float, start: datetime
) -> tuple[FleetSpec, list[Incident]]:
    """A small fleet (3 gateways x 3 models, 3 hosts x 2 GPUs) with one incident per slot.

    The first quarter is quiet so the detectors learn baselines; the last tenth is quiet
    so the last incident's alerts can resolve before the stream ends.
    """
    spec = FleetSpec(seed=seed, duration_s=span_s, rate=rate, hosts=3, gpus_per_host=2, start=start)
    fleet = Fleet.from_spec(spec)
    gw, models, hosts = fleet.gateways, fleet.models, fleet.hosts
    targets = {
        IncidentKind.ERROR_BURST: {"gateway": gw[0], "model": models[0]},
        IncidentKind.GPU_XID: {"host": hosts[1], "gpu_uuid": fleet.gpu_uuids[1][0]},
        IncidentKind.LATENCY_REGRESSION: {
            "model": models[0],
            "model_version": f"v{len(fleet.versions[0]) + 1}",
        },
        IncidentKind.TTFT_SPIKE: {"gateway": gw[1], "model": models[1]},
        IncidentKind.GPU_THROTTLE: {"host": hosts[2]},
    }
    warm, tail = 0.25 * span_s, 0.1 * span_s
    slot = (span_s - warm - tail) / len(DEMO_KINDS)
    incidents = [
        Incident(
            kind=kind,
            start_offset_s=round(warm + i * slot + 0.1 * slot, 3),
            duration_s=round(0.55 * slot, 3),
            severity=severity,
            target=targets[kind],
            detail={IncidentKind.GPU_XID: "79", IncidentKind.GPU_THROTTLE: "thermal"}.get(kind, ""),
        )
        for i, (kind, severity) in enumerate(DEMO_KINDS)
    ]
    return spec, incidents


@dataclass
class IncidentClock:
    """When (wall, monotonic) the published stream reached each incident's start."""

    spec: FleetSpec
    incidents: list[Incident]
    reached: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        base = self.spec.start.timestamp()
        self._starts = sorted(
            (base + inc.start_offset_s, i) for i, inc in enumerate(self.incidents)
        )
        self._next = 0

    def on_event(self, event: Event, event_t: float) -> None:
        while self._next < len(self._starts) and event_t >= self._starts[self._next][0]:
            self.reached[self._starts[self._next][1]] = time.monotonic()
            self._next += 1

    def first_alerts(self, seen: list[Seen]) -> dict[int, Seen]:
        """Per incident: the first firing alert that names its target, in its time window."""
        base = self.spec.start.timestamp()
        out: dict[int, Seen] = {}
        for i, inc in enumerate(self.incidents):
            lo = base + inc.start_offset_s - _EARLY_S
            hi = base + inc.end_offset_s + _GRACE_S
            for s in seen:
                a = s.alert
                # Every target label must be on the alert: a model-wide alert is not
                # credited to one version's regression.
                if (
                    a.status is AlertStatus.FIRING
                    and lo <= a.starts_at.timestamp() <= hi
                    and all(a.labels.get(k) == v for k, v in inc.target.items())
                ):
                    out[i] = s
                    break
        return out


def notification_line(seen: list[Seen], incidents: int) -> str:
    """What a person would have received: the notifier's stages (default config: group by
    alertname, the shipped inhibit rules) run over the alerts the console saw."""
    from stream.replay.pipeline import notifications

    n = notifications([s.alert for s in seen], incidents)
    per = f"{n['pages_per_incident']:.1f}" if incidents else "n/a"
    return (
        f"notifications      {n['pages']} sent for {incidents} incidents ({per} per incident), "
        f"{n['held_by_inhibition']} held by inhibition, {n['held_as_transient']} transient "
        f"(+{n['notifications'] - n['pages']} resolve/ack updates of those messages)"
    )


def warm_detectors(config: Path | None = None) -> float:
    """Run the detectors once on a tiny fleet so numba compiles (and caches) their kernels.

    Kernels are ``cache=True``: compiled once per machine, then loaded from disk by every
    process. On a fresh machine this takes seconds; done while the worker starts, the
    worker then loads them instead of compiling during the first incident. Returns seconds.
    """
    import orjson

    from schemas.decode import decode_columns
    from stream.config import load_config
    from stream.engine import Engine
    from stream.simulate import simulate

    began = time.perf_counter()
    # Long and eventful enough (bins close, a version rolls out) to reach every kernel.
    spec, incidents = demo_fleet(1, 600.0, 20.0, FleetSpec().start)
    engine = Engine(load_config(config))
    now = spec.start.timestamp() + 3600
    for chunk in simulate(spec, incidents):
        for kind in ("inference", "gpu", "feedback"):
            raws = [orjson.dumps(e) for e in chunk if e["kind"] == kind]
            if raws:
                engine.process(decode_columns(raws, kind=kind, now=now)[0])
    return time.perf_counter() - began


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the demo dies, even by SIGKILL, so no worker is orphaned."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass(frozen=True)
class WorkerMetrics:
    events_in: float
    batch_seconds: float


class WorkerProcess:
    """``llmwatch worker`` as a child process in its own session (so ^C reaches only us)."""

    def __init__(self, bootstrap: str, workdir: Path, config: Path | None = None) -> None:
        self.port = free_port()
        self.log = workdir / "worker.log"
        self.env = {
            **os.environ,
            "LLMWATCH_BOOTSTRAP_SERVERS": bootstrap,
            "LLMWATCH_WEB_PORT": str(self.port),
            "LLMWATCH_STORE": "memory://",  # the demo broker is in memory too
            "LLMWATCH_STATE_DIR": str(workdir / "state"),
        }
        self.argv = [sys.executable, "-m", "stream.cli", "worker", "--loglevel", "warn"]
        if config is not None:
            self.argv += ["--config", str(config)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {self.proc.returncode}; see {self.log}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)  # a child process: nothing to wait on but its port
        raise RuntimeError(f"worker not ready after {timeout_s:.0f} s; see {self.log}")

    def metrics(self) -> WorkerMetrics | None:
        try:
            with urllib.request.urlopen(self.url("/metrics"), timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        events = busy = 0.0
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == "llmwatch_events_in_total":
                    events += s.value
                elif s.name == "llmwatch_batch_seconds_sum":
                    busy += s.value
        return WorkerMetrics(events, busy)

    def stop(self, timeout_s: float = 20.0) -> tuple[int | None, float]:
        """SIGTERM, wait, SIGKILL if it hangs; returns (exit code, seconds it took)."""
        began = time.monotonic()
        if self.proc is None:
            return None, 0.0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode, time.monotonic() - began


@dataclass
class Throughput:
    """(monotonic, events handled) samples of the worker's /metrics."""

    samples: list[tuple[float, float]] = field(default_factory=list)
    busy_s: float = 0.0

    def add(self, m: WorkerMetrics | None) -> None:
        if m is not None:
            self.samples.append((time.monotonic(), m.events_in))
            self.busy_s = m.batch_seconds

    @property
    def handled(self) -> float:
        return self.samples[-1][1] if self.samples else 0.0

    def sustained(self) -> tuple[float, float] | None:
        """(events/s, seconds) from the first sample with events to the first with them all."""
        started = [s for s in self.samples if s[1] > 0]
        if len(started) < 2:
            return None
        t0, n0 = started[0]
        t1, n1 = next(s for s in started if s[1] >= self.handled)
        if t1 <= t0:
            return None
        return (n1 - n0) / (t1 - t0), t1 - t0

    def first_events_at(self) -> float | None:
        return next((t for t, n in self.samples if n > 0), None)
