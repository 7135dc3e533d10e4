"""The worker's Prometheus registry: private per instance, parseable exposition."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from stream.metrics import WorkerMetrics, reason_class


def _samples(m: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_two_instances_do_not_share_counters() -> None:
    a, b = WorkerMetrics(), WorkerMetrics()
    a.events_in.labels("llmwatch.inference").inc(3)
    assert _samples(a)[("llmwatch_events_in_total", (("topic", "llmwatch.inference"),))] == 3
    assert ("llmwatch_events_in_total", (("topic", "llmwatch.inference"),)) not in _samples(b)


def test_exposition_has_histograms_and_gauges() -> None:
    m = WorkerMetrics()
    m.batch_seconds.labels("t").observe(0.003)
    m.active_alerts.labels("critical").set(2)
    m.consumer_lag.labels("t", "1").set(7)
    s = _samples(m)
    assert s[("llmwatch_batch_seconds_count", (("topic", "t"),))] == 1
    assert s[("llmwatch_active_alerts", (("severity", "critical"),))] == 2
    assert s[("llmwatch_consumer_lag", (("partition", "1"), ("topic", "t")))] == 7


def test_reason_class_is_bounded() -> None:
    assert reason_class("latency_ms: Input should be ...", "latency_ms") == "latency_ms"
    assert reason_class("embedding.3: must be finite", "embedding.3") == "embedding"
    assert reason_class("not valid JSON: unexpected character", "$") == "json"
    assert reason_class("expected a JSON object, got list", "$") == "not_object"
    assert reason_class("message is 70000 bytes, over the limit of 65536", "$") == "too_large"
    assert reason_class("something new", "$") == "invalid"
