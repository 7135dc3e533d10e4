"""gpu_health: NVML throttle reasons, XIDs, ECC, memory leaks, utilisation collapse, HST."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from detectors._gpu_state import (
    HW_THERMAL_SLOWDOWN,
    SW_POWER_CAP,
    SYNC_BOOST,
    decode_reasons,
)
from detectors.base import Finding
from detectors.gpu_health import GpuHealthDetector
from schemas.columns import GpuColumns
from tests.detectors.cases import gpu_columns, obj

T0 = 1.7e9


def samples(
    n: int, *, start: int = 0, uuid: str = "GPU-0", host: str = "h1", seed: int = 0, **cols: Any
) -> GpuColumns:
    rng = np.random.default_rng(seed)
    ts = np.asarray(T0 + (start + np.arange(n)) * 5.0, dtype=np.float64)
    base: dict[str, Any] = {
        "sm_util_pct": np.clip(rng.normal(85, 4, n), 0, 100),
        "mem_used_mib": 40_000 + rng.normal(0, 150, n),
        "temp_c": rng.normal(65, 1.5, n),
    }
    base.update(cols)
    return gpu_columns(ts, gpu_uuid=obj(uuid, n), host=obj(host, n), **base)


def feed(det: GpuHealthDetector, cols: GpuColumns, size: int = 50) -> list[Finding]:
    out: list[Finding] = []
    for i in range(0, len(cols), size):
        out.extend(det.update(cols.take(slice(i, i + size))).findings)
    return out


def kinds(findings: list[Finding], anomalous: bool = True) -> set[str]:
    return {f.kind for f in findings if f.anomalous == anomalous}


def test_decode_reasons_uses_nvml_bits() -> None:
    assert decode_reasons(0x48) == ["hw_slowdown", "hw_thermal_slowdown"]
    assert decode_reasons(0x1) == ["gpu_idle"]
    assert decode_reasons(0x4 | 0x1000) == ["sw_power_cap", "0x1000"]


def test_healthy_gpu_is_quiet() -> None:
    det = GpuHealthDetector()
    out = [det.update(samples(800).take(slice(i, i + 50))) for i in range(0, 800, 50)]
    assert all(o.findings == [] for o in out)
    assert max(o.scores.max() for o in out) < 0.5


def test_sustained_thermal_throttle_fires_scoped_to_host() -> None:
    det = GpuHealthDetector()
    feed(det, samples(100))
    hot = samples(60, start=100, clocks_event_reasons=np.full(60, HW_THERMAL_SLOWDOWN, np.uint64))
    findings = feed(det, hot)
    throttle = [f for f in findings if f.kind == "gpu.throttle" and f.anomalous]
    assert throttle and throttle[-1].severity == "error"
    assert throttle[-1].scope == {"host": "h1"}
    assert "hw_thermal_slowdown" in throttle[-1].explanation
    assert throttle[-1].series == {"host": "h1", "gpu_uuid": "GPU-0", "gpu_index": "0"}


@pytest.mark.parametrize("bits", [0x1, SYNC_BOOST, 0x1 | SYNC_BOOST, 0x4])
def test_idle_and_sync_boost_are_not_throttles(bits: int) -> None:
    det = GpuHealthDetector()
    findings = feed(det, samples(200, clocks_event_reasons=np.full(200, bits, np.uint64)))
    assert "gpu.throttle" not in kinds(findings)


def test_brief_throttle_is_not_an_incident() -> None:
    det = GpuHealthDetector()
    reasons = np.zeros(200, np.uint64)
    reasons[100:103] = SW_POWER_CAP
    assert "gpu.throttle" not in kinds(feed(det, samples(200, clocks_event_reasons=reasons)))


@pytest.mark.parametrize(("xid", "severity"), [(79, "critical"), (48, "critical"), (13, "warning")])
def test_xid_severity_and_hold_then_recovery(xid: int, severity: str) -> None:
    det = GpuHealthDetector(event_hold_s=60)
    feed(det, samples(50))
    xids = np.full(10, -1)
    xids[3] = xid
    out = det.update(samples(10, start=50, xid=xids))
    fired = [f for f in out.findings if f.kind == "gpu.xid"]
    assert fired and fired[0].anomalous and fired[0].severity == severity
    assert out.scores[3] == out.scores.max() > 0.5
    later = feed(det, samples(40, start=60))
    assert [f.anomalous for f in later if f.kind == "gpu.xid"] == [False]


def test_ecc_double_bit_increase_is_critical_single_bit_is_not() -> None:
    det = GpuHealthDetector()
    feed(det, samples(50, ecc_dbe_total=np.full(50, 2), ecc_sbe_total=np.full(50, 5)))
    sbe = samples(10, start=50, ecc_dbe_total=np.full(10, 2), ecc_sbe_total=np.arange(10) + 6)
    assert det.update(sbe).findings == []
    dbe = samples(10, start=60, ecc_dbe_total=np.full(10, 3))
    found = [f for f in det.update(dbe).findings if f.kind == "gpu.ecc_dbe"]
    assert found and found[0].severity == "critical" and "rose by 1 to 3" in found[0].explanation


def test_memory_leak_projects_time_to_full() -> None:
    det = GpuHealthDetector(leak_horizon_s=3600)
    k = np.arange(200)
    used = 40_000 + np.where(k >= 60, (k - 60) * 60.0, 0.0)  # 720 MiB/min from sample 60
    findings = feed(det, samples(200, mem_used_mib=used))
    leaks = [f for f in findings if f.kind == "gpu.memory_leak" and f.anomalous]
    assert leaks and "full in ~" in leaks[-1].explanation
    assert leaks[-1].observed == pytest.approx(12.0, rel=0.2)  # MiB/s


def test_noisy_flat_memory_is_not_a_leak() -> None:
    det = GpuHealthDetector()
    noisy = 40_000 + np.random.default_rng(3).normal(0, 2000, 400)
    assert "gpu.memory_leak" not in kinds(feed(det, samples(400, mem_used_mib=noisy)))


def test_busy_gpu_collapsing_to_zero_fires_idle_gpu_does_not() -> None:
    util = np.concatenate([np.full(100, 90.0), np.zeros(30)])
    busy = GpuHealthDetector()
    assert "gpu.util_collapse" in kinds(feed(busy, samples(130, sm_util_pct=util)))
    idle = GpuHealthDetector()
    low = np.concatenate([np.full(100, 10.0), np.zeros(30)])
    assert "gpu.util_collapse" not in kinds(feed(idle, samples(130, sm_util_pct=low)))


def test_host_model_is_fed_once_per_interval() -> None:
    det = GpuHealthDetector(hst_enabled=True, hst_interval_s=30)
    cols = GpuColumns.concat([samples(240, uuid=f"GPU-{g}", seed=g) for g in range(4)])
    feed(det, cols.take(np.argsort(cols.ts, kind="stable")), size=97)
    # 240 samples 5 s apart is 1,200 s: 40 intervals (the last still open), for 960 samples.
    assert 38 <= det.hosts["h1"].learned <= 40


def test_host_multivariate_oddity_raises_host_score() -> None:
    det = GpuHealthDetector(hst_enabled=True, hst_interval_s=10, hst_window=20)
    feed(det, samples(600))
    odd = samples(
        60,
        start=600,
        temp_c=np.full(60, 98.0),
        power_w=np.full(60, 700.0),
        mem_util_pct=np.full(60, 2.0),
    )
    findings = feed(det, odd, size=4)
    assert "gpu.host_anomaly" in kinds(findings)
    host = next(f for f in findings if f.kind == "gpu.host_anomaly")
    assert host.scope == {"host": "h1"} and host.series == {"host": "h1"}


def test_idle_gpus_are_evicted() -> None:
    det = GpuHealthDetector(series_ttl_s=100)
    det.update(samples(5, uuid="GPU-old"))
    det.update(samples(5, start=1000, uuid="GPU-new"))
    assert len(det.registry) == 1 and len(det.gpus) == 1


def test_unknown_throttle_reason_names_the_field() -> None:
    with pytest.raises(ValidationError, match="throttle_reasons"):
        GpuHealthDetector(throttle_reasons=["hw_melting"])
    with pytest.raises(ValidationError, match="gpu_idle"):
        GpuHealthDetector(throttle_reasons=["gpu_idle"])


def test_power_brake_is_a_throttle_power_cap_alone_is_not() -> None:
    brake = samples(200, clocks_event_reasons=np.full(200, 0x4 | 0x80, np.uint64))
    assert "gpu.throttle" in kinds(feed(GpuHealthDetector(), brake))
    cap = samples(200, clocks_event_reasons=np.full(200, 0x4, np.uint64))
    assert "gpu.throttle" not in kinds(feed(GpuHealthDetector(), cap))


def test_fast_leak_fires_before_the_long_trend_is_clean() -> None:
    k = np.arange(130)
    # Flat, then +2,000 MiB per 5 s sample (24 GB/min): full within minutes.
    used = (
        20_000
        + np.where(k >= 110, (k - 110) * 2000.0, 0.0)
        + np.random.default_rng(4).normal(0, 150, 130)
    )
    cols = samples(130, mem_used_mib=used)
    assert "gpu.memory_leak" in kinds(feed(GpuHealthDetector(), cols, size=5))
    slow_only = GpuHealthDetector(fast_leak_pct_per_min=1000.0)
    assert "gpu.memory_leak" not in kinds(feed(slow_only, cols, size=5))


def test_host_model_is_off_by_default() -> None:
    det = GpuHealthDetector()
    feed(det, samples(100))
    assert det.hosts == {}


def test_memory_growing_on_every_gpu_together_is_load_not_a_leak() -> None:
    k = np.arange(130)
    rise = np.where(k >= 110, (k - 110) * 2000.0, 0.0)  # the same fast rise on all GPUs
    cols = GpuColumns.concat(
        [
            samples(130, uuid=f"GPU-{g}", seed=g, mem_used_mib=20_000 + rise + 50.0 * g)
            for g in range(4)
        ]
    )
    findings = feed(GpuHealthDetector(), cols.take(np.argsort(cols.ts, kind="stable")), size=8)
    assert "gpu.memory_leak" not in kinds(findings)
