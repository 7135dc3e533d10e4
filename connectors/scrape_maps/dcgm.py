"""NVIDIA dcgm-exporter's ``/metrics`` -> ``GpuSample``s, one per GPU per scrape.

Field names are DCGM's (``DCGM_FI_DEV_*``); a GPU is identified by its ``UUID``
label (``gpu`` is the index), its host by ``Hostname`` (the exporter's own label),
else the scrape's ``instance``.

XIDs, the one event that matters most, come in two shapes:

- ``DCGM_EXP_XID_ERRORS_COUNT{xid="79"}``: the exporter's *windowed* gauge, the
  number of XID records of that code in its sliding window. A rise between two
  scrapes is that many new XIDs; a fall is the window forgetting old ones. On the
  first scrape everything in the window is new to us, and reported: the window is
  minutes long, so it is recent, and a duplicate is cheaper than a missed XID 79.
- ``DCGM_FI_DEV_XID_ERRORS``: the code of the *last* XID (a latch). A change to a
  non-zero code is a new XID; the same code twice in a row is invisible (a DCGM
  limitation the count above fixes). The first scrape only primes the latch: its
  value may be days old. Ignored for a GPU that also exports the count.

Every XID rides on its own ``GpuSample`` (as the NVML agent does), so a burst is
not folded into one. Clock-event reasons use NVML's bitmask, under the current
name ``DCGM_FI_DEV_CLOCKS_EVENT_REASONS`` or the older
``DCGM_FI_DEV_CLOCK_THROTTLE_REASONS``.

A GPU without ``GPU_UTIL`` and both framebuffer gauges is not a ``GpuSample`` (its
families pass through as generic metrics). Other missing gauges (temperature,
power, clock) read 0 and are counted in ``missing`` by field, so a counters file
that leaves them out is visible. DCGM's "blank" sentinels (values near 2^31 or
2^63) count as missing. Row-remap fields have no ``GpuSample`` column: they pass
through as metrics, labelled with the host and GPU, for the ``series`` detector.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError

from connectors.exposition import LabelSet, SeriesId, Snapshot
from schemas.models import GpuSample

PREFIX = "DCGM_"
XID_COUNT = "DCGM_EXP_XID_ERRORS_COUNT"
XID_LATCH = "DCGM_FI_DEV_XID_ERRORS"
CLOCK_REASONS = ("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS")

# GpuSample field <- DCGM field names, first present wins.
_GAUGES: dict[str, tuple[str, ...]] = {
    "sm_util_pct": ("DCGM_FI_DEV_GPU_UTIL",),
    "mem_util_pct": ("DCGM_FI_DEV_MEM_COPY_UTIL",),
    "mem_used_mib": ("DCGM_FI_DEV_FB_USED",),
    "mem_free_mib": ("DCGM_FI_DEV_FB_FREE",),
    "mem_reserved_mib": ("DCGM_FI_DEV_FB_RESERVED",),
    "temp_c": ("DCGM_FI_DEV_GPU_TEMP",),
    "power_w": ("DCGM_FI_DEV_POWER_USAGE",),
    "power_limit_w": ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "DCGM_FI_DEV_ENFORCED_POWER_LIMIT"),
    "sm_clock_mhz": ("DCGM_FI_DEV_SM_CLOCK",),
    "clocks_event_reasons": CLOCK_REASONS,
    # Counters in DCGM's csv, but read as totals: GpuSample carries totals.
    "ecc_sbe_total": ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL"),
    "ecc_dbe_total": ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL"),
    "pcie_replay_total": ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER",),
}
_REQUIRED = ("sm_util_pct", "mem_used_mib", "mem_free_mib")
_DEFAULTED = ("temp_c", "power_w", "sm_clock_mhz")
_CONSUMED = frozenset(n for names in _GAUGES.values() for n in names) | {XID_COUNT, XID_LATCH}
# Labels that identify the GPU or describe the exporter, not the measurement.
_ID_LABELS = frozenset(
    {"gpu", "UUID", "device", "modelName", "Hostname", "pci_bus_id", "DCGM_FI_DRIVER_VERSION"}
)
_BLANK_32 = 0x7FFFFFF0  # DCGM_INT32_BLANK and the sentinels above it
_BLANK_64 = 0x7FFFFFFFFFFFFFF0


def _blank(value: float) -> bool:
    return not math.isfinite(value) or _BLANK_32 <= value < 2**32 or value >= _BLANK_64


def _base(name: str) -> str:
    # prometheus_client names a counter's sample <family>_total; DCGM's fields do not end so.
    return name[:-6] if name.endswith("_total") else name


@dataclass
class _Gpu:
    host: str
    index: int
    uuid: str
    values: dict[str, float] = field(default_factory=dict)
    counted: list[int] = field(default_factory=list)  # from the windowed count
    latched: list[int] = field(default_factory=list)  # from the last-XID latch
    has_count: bool = False

    @property
    def xids(self) -> list[int]:
        # The count is authoritative where exported: the latch misses repeats of one code.
        return self.counted if self.has_count else self.latched


class DcgmMapper:
    """Stateful (XID counts and latches between scrapes); one per scraped exporter."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self.missing: Counter[str] = Counter()
        self.invalid = 0
        self.last_error: str | None = None
        self._counts: dict[tuple[str, str], float] = {}
        self._latch: dict[str, float] = {}
        self._primed = False

    @staticmethod
    def knows(snap: Snapshot) -> bool:
        return any(name.startswith(PREFIX) for name, _ in (*snap.gauges, *snap.counters))

    def split(self, snap: Snapshot, ts: float) -> tuple[list[GpuSample], Snapshot]:
        """GpuSamples for every complete GPU, and the snapshot of what they did not consume."""
        gpus: dict[str, _Gpu] = {}
        rest = Snapshot(histograms=dict(snap.histograms))
        for kind, series in (("gauge", snap.gauges), ("counter", snap.counters)):
            for sid, value in series.items():
                if not self._take(sid, value, gpus):
                    target = rest.gauges if kind == "gauge" else rest.counters
                    target[self._gpu_labelled(sid)] = value
        self._primed = True
        when = datetime.fromtimestamp(ts, UTC)
        out: list[GpuSample] = []
        for gpu in gpus.values():
            out.extend(self._samples(gpu, when, snap, rest))
        return out, rest

    def _take(self, sid: SeriesId, value: float, gpus: dict[str, _Gpu]) -> bool:
        name, labels = _base(sid[0]), dict(sid[1])
        if name not in _CONSUMED or "UUID" not in labels:
            return False
        gpu = self._gpu(labels, gpus)
        if name == XID_COUNT:
            self._xid_count(gpu, labels.get("xid", ""), value)
        elif name == XID_LATCH:
            self._xid_latch(gpu, value)
        elif not _blank(value):
            for fld, names in _GAUGES.items():
                if name in names and fld not in gpu.values:
                    gpu.values[fld] = value
        return True

    def _gpu(self, labels: Mapping[str, str], gpus: dict[str, _Gpu]) -> _Gpu:
        uuid = labels["UUID"]
        gpu = gpus.get(uuid)
        if gpu is None:
            host = labels.get("Hostname") or self.instance
            idx = labels.get("gpu", "0")
            gpu = gpus[uuid] = _Gpu(host, int(idx) if idx.isdigit() else 0, uuid)
        return gpu

    def _xid_count(self, gpu: _Gpu, xid: str, value: float) -> None:
        gpu.has_count = True
        if not xid.isdigit() or xid == "0":
            return  # the exporter's "no XID" series
        before = self._counts.get((gpu.uuid, xid), 0.0)
        self._counts[(gpu.uuid, xid)] = value
        gpu.counted.extend([int(xid)] * max(0, int(value - before)))

    def _xid_latch(self, gpu: _Gpu, value: float) -> None:
        before = self._latch.get(gpu.uuid)
        self._latch[gpu.uuid] = value
        if self._primed and value > 0 and value != before and not _blank(value):
            gpu.latched.append(int(value))

    def _samples(
        self, gpu: _Gpu, when: datetime, snap: Snapshot, rest: Snapshot
    ) -> list[GpuSample]:
        v = gpu.values
        if any(f not in v for f in _REQUIRED):
            self._give_back(gpu.uuid, snap, rest)
            return []
        for f in _DEFAULTED:
            if f not in v:
                self.missing[f] += 1
        xids = gpu.xids
        try:
            base = GpuSample(
                ts=when,
                host=gpu.host,
                gpu_index=gpu.index,
                gpu_uuid=gpu.uuid,
                sm_util_pct=v["sm_util_pct"],
                mem_util_pct=v.get("mem_util_pct", 0.0),
                mem_used_mib=v["mem_used_mib"],
                mem_total_mib=v["mem_used_mib"] + v["mem_free_mib"] + v.get("mem_reserved_mib", 0),
                temp_c=v.get("temp_c", 0.0),
                power_w=v.get("power_w", 0.0),
                power_limit_w=v.get("power_limit_w", 0.0),
                sm_clock_mhz=v.get("sm_clock_mhz", 0.0),
                clocks_event_reasons=int(v.get("clocks_event_reasons", 0)),
                xid=xids[0] if xids else None,
                ecc_sbe_total=int(v.get("ecc_sbe_total", 0)),
                ecc_dbe_total=int(v.get("ecc_dbe_total", 0)),
                pcie_replay_total=int(v.get("pcie_replay_total", 0)),
            )
        except ValidationError as exc:
            # Out-of-range readings: not a GpuSample, but the raw families still go out.
            self.invalid += 1
            self.last_error = f"GPU {gpu.uuid}: {exc.errors()[0]['msg']}"
            self._give_back(gpu.uuid, snap, rest)
            return []
        return [base, *(base.model_copy(update={"xid": x}) for x in xids[1:])]

    def _give_back(self, uuid: str, snap: Snapshot, rest: Snapshot) -> None:
        for src, dst in ((snap.gauges, rest.gauges), (snap.counters, rest.counters)):
            for sid, value in src.items():
                if dict(sid[1]).get("UUID") == uuid and _base(sid[0]) in _CONSUMED:
                    dst[self._gpu_labelled(sid)] = value

    def _gpu_labelled(self, sid: SeriesId) -> SeriesId:
        """Pass-through series keep the GPU's identity as llmwatch names it (host, gpu_uuid)."""
        name, labels = sid
        d = dict(labels)
        if "UUID" not in d:
            return sid
        out: dict[str, str] = {k: v for k, v in d.items() if k not in _ID_LABELS}
        out["gpu_uuid"] = d["UUID"]
        out["host"] = d.get("Hostname") or self.instance
        return name, _sorted(out.items())


def _sorted(items: Iterable[tuple[str, str]]) -> LabelSet:
    return tuple(sorted(items))
