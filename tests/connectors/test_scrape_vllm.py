"""Scraper against a real local HTTP server serving vLLM-style exposition.

The exposition is produced the way vLLM produces it: prometheus_client metrics
(same names, labels and bucket bounds as vLLM's) rendered with generate_latest.
"""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from connectors.exposition import histogram_quantile, parse_exposition
from connectors.scrape import MetricPublisher, Scraped, Scraper
from schemas.columns import series_key
from schemas.models import MetricSample
from tests.conftest import Record

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
LABELS = {"model_name": MODEL, "engine": "0"}
E2E_BUCKETS = [
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
]
TTFT_BUCKETS = [
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
]


class FakeVllm:
    """One vLLM server's metrics; ``restart()`` starts from zero like a restarted process."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.registry = r = CollectorRegistry()
        names = list(LABELS)
        self.running = Gauge("vllm:num_requests_running", "running", names, registry=r)
        self.waiting = Gauge("vllm:num_requests_waiting", "waiting", names, registry=r)
        self.cache = Gauge("vllm:gpu_cache_usage_perc", "KV cache usage", names, registry=r)
        self.success = Counter(
            "vllm:request_success", "finished", [*names, "finished_reason"], registry=r
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds", "e2e", names, buckets=E2E_BUCKETS, registry=r
        )
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds", "ttft", names, buckets=TTFT_BUCKETS, registry=r
        )
        self.gc = Counter("python_gc_objects_collected", "gc", registry=r)

    def serve(self, running: int, waiting: int, cache: float) -> None:
        self.running.labels(**LABELS).set(running)
        self.waiting.labels(**LABELS).set(waiting)
        self.cache.labels(**LABELS).set(cache)

    def finish(self, n: int, reason: str, e2e_s: float, ttft_s: float) -> None:
        self.success.labels(**LABELS, finished_reason=reason).inc(n)
        for _ in range(n):
            self.e2e.labels(**LABELS).observe(e2e_s)
            self.ttft.labels(**LABELS).observe(ttft_s)
        self.gc.inc(100)

    def text(self) -> bytes:
        return generate_latest(self.registry)


@pytest.fixture
def vllm() -> Iterator[tuple[str, FakeVllm]]:
    server_state = FakeVllm()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = server_state.text()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/metrics", server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


class StepClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def find(samples: list[MetricSample], name: str, **labels: str) -> float:
    hits = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


def names(samples: list[MetricSample]) -> set[str]:
    return {s.name for s in samples}


def scrape_raw(scraper: Scraper) -> list[MetricSample]:
    """``scraper.scrape_once()`` where the exposition has no mapped (GPU) families, so
    every event is a MetricSample."""
    samples = scraper.scrape_once()
    metrics = [s for s in samples if isinstance(s, MetricSample)]
    assert len(metrics) == len(samples)
    return metrics


def test_rates_percentiles_gauges_and_a_counter_reset(vllm: tuple[str, FakeVllm]) -> None:
    url, server = vllm
    clock = StepClock(1_714_564_800.0)
    published: list[Scraped] = []
    scraper = Scraper(url, published.append, prefixes=["vllm:"], clock=clock, mapping="raw")
    instance = url.split("/")[2]

    server.serve(running=3, waiting=0, cache=0.12)
    server.finish(5, "stop", e2e_s=0.4, ttft_s=0.03)
    first = scrape_raw(scraper)
    # The first scrape only primes the window: gauges, no rates or percentiles.
    assert names(first) == {
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:gpu_cache_usage_perc",
    }
    assert find(first, "vllm:num_requests_running") == 3.0
    assert all(s.labels["instance"] == instance for s in first)

    # 15 s later: 30 more successes (24 stop, 6 length), 6 requests at 0.7 s e2e, 4 at 1.8 s.
    clock.now += 15
    server.serve(running=7, waiting=2, cache=0.56)
    server.finish(6, "stop", e2e_s=0.7, ttft_s=0.05)
    server.finish(4, "stop", e2e_s=1.8, ttft_s=0.3)
    server.finish(14, "stop", e2e_s=15.0, ttft_s=0.3)  # lands in the (10, 15] bucket
    server.success.labels(**LABELS, finished_reason="length").inc(6)
    second = scrape_raw(scraper)
    assert find(second, "vllm:num_requests_running") == 7.0
    assert find(second, "vllm:num_requests_waiting") == 2.0
    assert find(second, "vllm:gpu_cache_usage_perc") == pytest.approx(0.56)
    assert find(second, "vllm:request_success_total:rate", finished_reason="stop") == (
        pytest.approx(24 / 15)
    )
    # "length" first appeared in this scrape: its rate is known from the next one.
    assert not [s for s in second if s.labels.get("finished_reason") == "length"]

    # e2e window: 6 in (0.5, 0.8], 4 in (1.5, 2.0], 14 in (10, 15]: 24 observations.
    e2e = "vllm:e2e_request_latency_seconds"
    assert find(second, f"{e2e}:rate") == pytest.approx(24 / 15)
    assert find(second, f"{e2e}:mean") == pytest.approx((6 * 0.7 + 4 * 1.8 + 14 * 15.0) / 24)
    # p50: rank 12 falls in (10, 15] holding ranks 11..24: 10 + 5 * (12 - 10) / 14.
    assert find(second, f"{e2e}:p50") == pytest.approx(10 + 5 * 2 / 14)
    # p90: rank 21.6, ten below the bucket; p99: rank 23.76.
    assert find(second, f"{e2e}:p90") == pytest.approx(10 + 5 * 11.6 / 14)
    assert find(second, f"{e2e}:p99") == pytest.approx(10 + 5 * 13.76 / 14)
    ttft = "vllm:time_to_first_token_seconds"
    # ttft window: 6 in (0.04, 0.06], 18 in (0.25, 0.5]: p50 rank 12 -> 0.25 + 0.25 * 6 / 18.
    assert find(second, f"{ttft}:p50") == pytest.approx(0.25 + 0.25 * 6 / 18)
    assert "python_gc_objects_collected_total:rate" not in names(second)

    # The server restarts: every counter and histogram is back near zero.
    clock.now += 15
    server.restart()
    server.serve(running=1, waiting=0, cache=0.01)
    server.finish(3, "stop", e2e_s=2.2, ttft_s=0.09)
    third = scrape_raw(scraper)
    assert find(third, "vllm:request_success_total:rate", finished_reason="stop") == (
        pytest.approx(3 / 15)
    )
    # After the reset only the three new observations count: all in (2.0, 2.5].
    assert find(third, f"{e2e}:p50") == pytest.approx(2.0 + 0.5 * 1.5 / 3)
    assert find(third, f"{e2e}:rate") == pytest.approx(3 / 15)
    assert scraper.window.resets >= 3
    assert published == first + second + third


def test_no_observations_in_window_gives_rate_zero_and_no_percentiles(
    vllm: tuple[str, FakeVllm],
) -> None:
    url, server = vllm
    clock = StepClock(1000.0)
    scraper = Scraper(url, lambda s: None, prefixes=["vllm:"], clock=clock, mapping="raw")
    server.finish(2, "stop", e2e_s=0.4, ttft_s=0.03)
    scraper.scrape_once()
    clock.now += 10
    quiet = scrape_raw(scraper)
    assert find(quiet, "vllm:e2e_request_latency_seconds:rate") == 0.0
    assert not any(s.name.endswith(":p50") for s in quiet)


def test_unprefixed_scrape_keeps_everything(vllm: tuple[str, FakeVllm]) -> None:
    url, server = vllm
    clock = StepClock(1000.0)
    scraper = Scraper(url, lambda s: None, clock=clock)
    server.finish(1, "stop", 0.4, 0.03)
    scraper.scrape_once()
    clock.now += 5
    server.finish(1, "stop", 0.4, 0.03)
    assert find(scrape_raw(scraper), "python_gc_objects_collected_total:rate") == 20.0


def test_fetch_failure_is_counted_not_raised() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scraper = Scraper(f"http://127.0.0.1:{port}/metrics", lambda s: None, timeout_s=2)
    assert scraper.scrape_once() == []
    assert scraper.failures == 1 and scraper.last_error


def test_bad_url_is_named() -> None:
    with pytest.raises(ValueError, match="url"):
        Scraper("localhost:8000", lambda s: None)


def test_histogram_quantile_matches_prometheus_rules() -> None:
    inf = math.inf
    b = [(0.1, 0.0), (0.5, 6.0), (1.0, 10.0), (inf, 10.0)]
    assert histogram_quantile(0.5, b) == pytest.approx(0.1 + 0.4 * 5 / 6)
    assert histogram_quantile(0.0, b) == pytest.approx(0.1)
    # Rank in the +Inf bucket: the largest finite bound.
    assert histogram_quantile(0.99, [(1.0, 1.0), (2.0, 2.0), (inf, 10.0)]) == 2.0
    assert math.isnan(histogram_quantile(0.5, [(1.0, 0.0), (inf, 0.0)]))
    assert math.isnan(histogram_quantile(0.5, [(1.0, 3.0)]))  # no +Inf bucket
    assert histogram_quantile(1.5, b) == inf
    qs = [histogram_quantile(q / 100, b) for q in range(1, 100)]
    assert qs == sorted(qs)


def test_summary_and_untyped_families_parse() -> None:
    text = (
        "# TYPE rpc_seconds summary\n"
        'rpc_seconds{quantile="0.5"} 0.2\n'
        "rpc_seconds_sum 12.0\n"
        "rpc_seconds_count 40\n"
        "# TYPE up untyped\n"
        "up 1\n"
    )
    snap = parse_exposition(text)
    assert snap.gauges[("rpc_seconds", (("quantile", "0.5"),))] == 0.2
    assert snap.gauges[("up", ())] == 1.0
    assert snap.counters[("rpc_seconds_count", ())] == 40.0


def test_scraped_samples_reach_the_broker_keyed_by_series(
    vllm: tuple[str, FakeVllm],
    embedded_broker: str,
    topic_name: str,
    consume_all: Callable[..., list[Record]],
) -> None:
    url, server = vllm
    clock = StepClock(1000.0)
    pub = MetricPublisher({"bootstrap.servers": embedded_broker}, topic_name)
    scraper = Scraper(url, pub, prefixes=["vllm:"], clock=clock, mapping="raw")
    server.serve(2, 1, 0.3)
    server.finish(4, "stop", 0.9, 0.05)
    sent = scraper.scrape_once()
    clock.now += 15
    server.finish(4, "stop", 0.9, 0.05)
    sent += scraper.scrape_once()
    assert pub.flush(10) == 0
    records = consume_all(topic_name, expected=len(sent))
    assert len(records) == len(sent)
    got = sorted((MetricSample.model_validate_json(r.value) for r in records), key=repr)
    assert got == sorted(sent, key=repr)
    for r in records:
        s = MetricSample.model_validate_json(r.value)
        assert r.key == series_key(s.name, s.labels).encode()
