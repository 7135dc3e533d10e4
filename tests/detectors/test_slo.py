"""slo_burn: multi-window, multi-burn-rate alerting on event-time buckets."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from pydantic import ValidationError

from detectors.base import Finding
from detectors.slo import SloBurnDetector
from schemas.columns import STATUS_CODES, InferenceColumns
from tests.detectors.cases import inference_columns, obj

T0 = 1.7e9
ONE_RULE = [{"long_s": 3600, "short_s": 300, "factor": 14.4, "severity": "critical"}]


def traffic(
    start_s: float,
    end_s: float,
    error_rate: float = 0.0,
    slow_rate: float = 0.0,
    rate_per_s: float = 2.0,
    seed: int = 0,
    gateway: str = "gw-1",
) -> InferenceColumns:
    rng = np.random.default_rng(seed)
    n = int((end_s - start_s) * rate_per_s)
    ts = T0 + np.sort(rng.uniform(start_s, end_s, n))
    status = np.where(rng.random(n) < error_rate, STATUS_CODES["error"], STATUS_CODES["ok"])
    latency = np.where(rng.random(n) < slow_rate, 20_000.0, 700.0)
    return inference_columns(ts, status=status, latency_ms=latency, gateway=obj(gateway, n))


def feed(det: SloBurnDetector, cols: InferenceColumns, size: int = 600) -> list[Finding]:
    out: list[Finding] = []
    for i in range(0, len(cols), size):
        out.extend(det.update(cols.take(slice(i, i + size))).findings)
    return out


def test_healthy_traffic_is_quiet() -> None:
    det = SloBurnDetector()
    cols = traffic(0, 7200, error_rate=0.0002)
    scores = np.concatenate(
        [det.update(cols.take(slice(i, i + 600))).scores for i in range(0, len(cols), 600)]
    )
    assert scores.max() < 0.5
    assert det.update(traffic(7200, 7300, seed=1)).findings == []


def test_error_burst_pages_with_fast_burn_and_scope() -> None:
    det = SloBurnDetector()
    feed(det, traffic(0, 3600, seed=1))
    findings = feed(det, traffic(3600, 3600 + 900, error_rate=0.3, seed=2))
    fired = [f for f in findings if f.anomalous and f.kind == "slo_burn.availability"]
    assert fired, "a 300x burn must fire"
    last = fired[-1]
    assert last.severity == "critical"
    assert last.observed is not None and last.observed >= 14.4
    # Every request of this case is served by host h1, so the burn is localised to it.
    assert last.scope == {"model": "llama-70b", "gateway": "gw-1", "host": "h1"}
    assert "1h" in last.explanation and "5m" in last.explanation
    assert last.score > 0.5
    assert not [f for f in findings if f.kind == "slo_burn.latency" and f.anomalous]


def test_recovers_once_when_short_window_is_clean() -> None:
    det = SloBurnDetector(rules=ONE_RULE)
    feed(det, traffic(0, 3600, seed=1))
    assert any(f.anomalous for f in feed(det, traffic(3600, 4200, error_rate=0.3, seed=2)))
    after = feed(det, traffic(4200, 5400, seed=3))
    recoveries = [f for f in after if not f.anomalous]
    assert len(recoveries) == 1 and recoveries[0].severity == "info"
    assert not [f for f in after if f.anomalous and f.ts > recoveries[0].ts]


def test_latency_slo_fires_on_slow_requests_only() -> None:
    det = SloBurnDetector(rules=ONE_RULE, latency_metric="latency_ms", latency_threshold_ms=10_000)
    feed(det, traffic(0, 3600, seed=1))
    findings = feed(det, traffic(3600, 4500, slow_rate=0.8, seed=2))
    kinds = {f.kind for f in findings if f.anomalous}
    assert kinds == {"slo_burn.latency"}


def test_latency_slo_is_on_ttft_by_default_not_on_long_answers() -> None:
    det = SloBurnDetector(rules=ONE_RULE)
    feed(det, traffic(0, 3600, seed=1))
    # Long answers: 20 s end to end, first token fast. Not a latency problem.
    long = traffic(3600, 4500, slow_rate=0.8, seed=2)
    assert not [f for f in feed(det, long) if f.anomalous]
    slow_first_token = traffic(4500, 5400, seed=3)
    slow_first_token.ttft_ms[:] = 8000.0
    kinds = {f.kind for f in feed(det, slow_first_token) if f.anomalous}
    assert kinds == {"slo_burn.latency"}


def test_ticket_rule_warns_on_slow_burn() -> None:
    rules = [{"long_s": 6 * 3600, "short_s": 1800, "factor": 1.0, "severity": "warning"}]
    det = SloBurnDetector(rules=rules)
    findings = feed(det, traffic(0, 4 * 3600, error_rate=0.004, rate_per_s=1.0), size=2000)
    assert findings and findings[-1].anomalous and findings[-1].severity == "warning"


def test_too_few_requests_or_too_little_history_stay_quiet() -> None:
    det = SloBurnDetector(min_requests=50)
    out = det.update(traffic(0, 600, error_rate=0.5, rate_per_s=0.05))
    assert out.findings == []
    fresh = SloBurnDetector(rules=ONE_RULE)  # 25 % of 1h = 15 minutes of history needed
    assert fresh.update(traffic(0, 120, error_rate=0.5, seed=4)).findings == []


def test_uses_event_time_not_arrival_batches() -> None:
    cols = traffic(0, 5400, error_rate=0.0, seed=5)
    burst = traffic(5400, 6000, error_rate=0.3, seed=6)
    whole = SloBurnDetector()
    whole_findings = whole.update(InferenceColumns.concat([cols, burst])).findings
    parts = SloBurnDetector()
    feed(parts, cols, size=997)
    part_findings = feed(parts, burst, size=313)
    assert [f.kind for f in whole_findings] == ["slo_burn.availability"]
    assert whole_findings[-1].observed == pytest.approx(part_findings[-1].observed)


def test_series_are_per_model_and_gateway() -> None:
    det = SloBurnDetector(rules=ONE_RULE)
    feed(
        det,
        InferenceColumns.concat(
            [traffic(0, 3600, seed=1, gateway="gw-a"), traffic(0, 3600, seed=2, gateway="gw-b")]
        ),
    )
    bad = InferenceColumns.concat(
        [
            traffic(3600, 4200, error_rate=0.3, seed=3, gateway="gw-a"),
            traffic(3600, 4200, seed=4, gateway="gw-b"),
        ]
    )
    order = np.argsort(bad.ts, kind="stable")
    findings = feed(det, bad.take(order))
    assert {f.series["gateway"] for f in findings if f.anomalous} == {"gw-a"}


def test_late_data_older_than_the_ring_is_ignored() -> None:
    det = SloBurnDetector(rules=ONE_RULE)
    det.update(traffic(7200, 7300))
    late = traffic(0, 60, error_rate=1.0)  # over an hour late: outside the 1h ring
    out = det.update(late)
    assert np.isfinite(out.scores).all() and out.findings == []


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValidationError, match="rules"):
        SloBurnDetector(rules=[{"long_s": 60, "short_s": 600, "factor": 2}])
    with pytest.raises(ValidationError, match="bad_statuses"):
        SloBurnDetector(bad_statuses=["broken"])
    with pytest.raises(ValidationError, match="availability_target"):
        SloBurnDetector(availability_target=1.5)


def test_bytes_per_series_reflects_ring_size() -> None:
    assert SloBurnDetector(rules=ONE_RULE).bytes_per_series < SloBurnDetector().bytes_per_series


def test_state_per_series_is_small_with_coarse_bins_for_long_windows() -> None:
    det = SloBurnDetector()
    # 5m/30m in 1-minute bins, 1h in 2-minute, 6h in 15-minute, 3d in 3-hour bins.
    assert det.mult.tolist() == [1, 2, 15, 180]
    assert det.bytes_per_series <= 2048
    fine = SloBurnDetector(bins_per_window=60)
    assert fine.bytes_per_series > det.bytes_per_series


def test_out_of_order_rows_count_as_of_their_own_minute() -> None:
    cols = InferenceColumns.concat(
        [traffic(0, 3600, seed=1), traffic(3600, 4200, error_rate=0.3, seed=2)]
    )
    shuffled = cols.take(np.random.default_rng(3).permutation(len(cols)))
    in_order, mixed = SloBurnDetector(rules=ONE_RULE), SloBurnDetector(rules=ONE_RULE)
    a, b = in_order.update(cols), mixed.update(shuffled)
    assert [f.observed for f in a.findings] == [f.observed for f in b.findings]
    assert a.findings and a.findings[0].anomalous
    back = np.empty(len(cols), dtype=np.intp)
    back[np.random.default_rng(3).permutation(len(cols))] = np.arange(len(cols))
    np.testing.assert_allclose(b.scores[back], a.scores)


def test_burns_in_slices_match_one_gather(monkeypatch: pytest.MonkeyPatch) -> None:
    import detectors.slo

    cols = InferenceColumns.concat(
        [traffic(0, 3600, seed=1, gateway=f"gw-{i}") for i in range(5)]
        + [traffic(3600, 4200, error_rate=0.3, seed=2, gateway="gw-3")]
    )
    whole = SloBurnDetector(rules=ONE_RULE).update(cols)
    monkeypatch.setattr(detectors.slo, "_CHUNK", 2)
    sliced = SloBurnDetector(rules=ONE_RULE).update(cols)
    np.testing.assert_array_equal(whole.scores, sliced.scores)
    assert [f.series for f in whole.findings] == [f.series for f in sliced.findings]
    assert whole.findings and whole.findings[0].series["gateway"] == "gw-3"


def test_snapshot_of_the_old_minute_ring_layout_starts_afresh() -> None:
    old = {"bucket_id": np.zeros((8, 61)), "counts": np.zeros((8, 61, 3))}
    payload = {"format": 1, "name": "slo_burn", "params": {"rules": ONE_RULE}, "state": old}
    det = SloBurnDetector.restore(pickle.dumps(payload))
    assert det.active_series() == 0 and det.st.counts.shape[1:] == (37, 3)
    feed(det, traffic(0, 3600, seed=1))
    assert any(f.anomalous for f in feed(det, traffic(3600, 4200, error_rate=0.3, seed=2)))
