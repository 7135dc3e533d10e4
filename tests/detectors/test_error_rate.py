"""Error-rate detector: fires on bursts, not on one failure out of two requests."""

from __future__ import annotations

import numpy as np
from cases import inference_columns
from cases.error_rate import make_case

from detectors.error_rate import ErrorRateDetector
from schemas.columns import STATUS_CODES


def test_fires_on_error_burst_and_timeouts() -> None:
    batches, labels = make_case(11)
    det = ErrorRateDetector()
    outs = [det.update(b) for b in batches]
    kinds = {(f.kind, f.series["gateway"]) for o in outs for f in o.findings if f.anomalous}
    assert ("error_rate.error", "gw-b") in kinds and ("error_rate.timeout", "gw-a") in kinds
    scores = np.concatenate([o.scores for o in outs])
    lab = np.concatenate(labels)
    assert scores[lab].mean() > 3 * scores[~lab].mean()


def test_low_counts_do_not_alert() -> None:
    ts = 1.7e9 + np.array([0.0, 1.0])
    status = np.array([STATUS_CODES["error"], STATUS_CODES["ok"]])
    out = ErrorRateDetector().update(inference_columns(ts, status=status))
    assert (out.scores < 0.5).all() and not out.findings


def test_quiet_on_clean_background() -> None:
    rng = np.random.default_rng(2)
    ts = 1.7e9 + np.sort(rng.uniform(0, 3600, 5000))
    status = np.where(rng.random(5000) < 0.01, STATUS_CODES["error"], STATUS_CODES["ok"])
    det = ErrorRateDetector()
    outs = [
        det.update(inference_columns(ts[i : i + 250], status=status[i : i + 250]))
        for i in range(0, 5000, 250)
    ]
    assert not [f for o in outs for f in o.findings if f.anomalous]


def _burst(failing_hosts: list[str], seed: int = 3) -> list:  # type: ignore[type-arg]
    """An hour of clean traffic over four hosts, then 10 minutes where the given hosts
    fail half their requests."""
    rng = np.random.default_rng(seed)
    n = 24000
    ts = 1.7e9 + np.sort(rng.uniform(0, 4200, n))
    host = np.array(["h1", "h2", "h3", "h4"], dtype=object)[rng.integers(0, 4, n)]
    bad = (ts >= 1.7e9 + 3600) & np.isin(host, failing_hosts) & (rng.random(n) < 0.5)
    status = np.where(bad, STATUS_CODES["error"], STATUS_CODES["ok"])
    det = ErrorRateDetector()
    cols = inference_columns(ts, status=status, host=host)
    return [f for i in range(0, n, 500) for f in det.update(cols.take(slice(i, i + 500))).findings]


def test_failures_from_one_host_name_it() -> None:
    findings = _burst(["h2"])
    fired = [f for f in findings if f.anomalous]
    assert fired and all(f.series.get("host") == "h2" for f in fired)
    assert "concentrated on host h2" in fired[0].explanation
    # The recovery carries the same labels, so it resolves the same alert.
    assert all(f.series.get("host") == "h2" for f in findings if not f.anomalous)


def test_failures_spread_over_hosts_name_none() -> None:
    fired = [f for f in _burst(["h1", "h2", "h3", "h4"]) if f.anomalous]
    assert fired and all("host" not in f.series for f in fired)


def test_a_quiet_series_gathers_host_evidence_across_batches() -> None:
    """Batches of four requests: no single batch can name a host, the episode does."""
    rng = np.random.default_rng(5)
    n = 6000
    ts = 1.7e9 + np.sort(rng.uniform(0, 4200, n))
    host = np.array(["h1", "h2", "h3"], dtype=object)[rng.integers(0, 3, n)]
    bad = (ts >= 1.7e9 + 3600) & (host == "h3") & (rng.random(n) < 0.6)
    status = np.where(bad, STATUS_CODES["error"], STATUS_CODES["ok"])
    det = ErrorRateDetector()
    cols = inference_columns(ts, status=status, host=host)
    fired = [
        f
        for i in range(0, n, 4)
        for f in det.update(cols.take(slice(i, i + 4))).findings
        if f.anomalous
    ]
    assert fired and all(f.series.get("host") == "h3" for f in fired)


def test_failures_moving_off_the_host_start_a_new_episode() -> None:
    """An XID on h2, then a burst on every host: the second incident gets its own alert."""
    rng = np.random.default_rng(6)
    n = 30000
    ts = 1.7e9 + np.sort(rng.uniform(0, 4800, n))
    host = np.array(["h1", "h2", "h3", "h4"], dtype=object)[rng.integers(0, 4, n)]
    t = ts - 1.7e9
    p = np.where((t >= 3600) & (t < 4200) & (host == "h2"), 0.5, 0.0)
    p = np.where(t >= 4200, 0.3, p)
    status = np.where(rng.random(n) < p, STATUS_CODES["error"], STATUS_CODES["ok"])
    det = ErrorRateDetector()
    cols = inference_columns(ts, status=status, host=host)
    findings = [
        f for i in range(0, n, 500) for f in det.update(cols.take(slice(i, i + 500))).findings
    ]
    on_h2 = [f for f in findings if f.series.get("host") == "h2"]
    spread = [f for f in findings if f.anomalous and "host" not in f.series]
    assert on_h2 and on_h2[0].anomalous and not on_h2[-1].anomalous  # h2's episode ended
    assert spread and min(f.ts for f in spread) - 1.7e9 >= 4200
