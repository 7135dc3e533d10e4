"""``llmwatch scrape`` mapping known exporters to typed events, from their exposition text.

Fixtures (tests/connectors/fixtures, each says where it came from): a literal
dcgm-exporter scrape of an L40S and a literal SGLang scrape from its docs; a composed
H100 dcgm-exporter pair (XID count, clock-event reasons, ECC), composed vLLM 0.11 and
TGI pairs. Each is served by a real local HTTP server and scraped over TCP.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from connectors.scrape import MetricPublisher, Scraper
from detectors.gpu_health import GpuHealthDetector
from schemas.columns import GpuColumns
from schemas.models import GpuSample, MetricSample
from tests.conftest import Record

FIXTURES = Path(__file__).parent / "fixtures"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
GPU1 = "GPU-4b1e8d7a-93c2-4f57-8a0b-61c9e2f4d5a3"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


class Exporter:
    """Serves the next body of ``bodies`` on each GET (the last one repeats)."""

    def __init__(self, bodies: list[str]) -> None:
        self.bodies = bodies
        self.served = 0

    def next_body(self) -> bytes:
        body = self.bodies[min(self.served, len(self.bodies) - 1)]
        self.served += 1
        return body.encode()


@pytest.fixture
def serve() -> Iterator[Callable[[list[str]], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(bodies: list[str]) -> str:
        exporter = Exporter(bodies)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.next_body()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/metrics"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


class StepClock:
    def __init__(self) -> None:
        self.now = 1_764_000_000.0

    def __call__(self) -> float:
        return self.now


def scrape_all(url: str, n: int, **kw: object) -> list[list[MetricSample | GpuSample]]:
    clock = StepClock()
    scraper = Scraper(url, lambda s: None, clock=clock, **kw)  # type: ignore[arg-type]
    out = []
    for _ in range(n):
        out.append(scraper.scrape_once())
        clock.now += 15
    return out


def gpus(samples: list[MetricSample | GpuSample]) -> list[GpuSample]:
    return [s for s in samples if isinstance(s, GpuSample)]


def metric(samples: list[MetricSample | GpuSample], name: str, **labels: str) -> MetricSample:
    hits = [
        s
        for s in samples
        if isinstance(s, MetricSample) and s.name == name and labels.items() <= s.labels.items()
    ]
    assert len(hits) == 1, (name, labels, [s.name for s in samples if isinstance(s, MetricSample)])
    return hits[0]


def test_dcgm_h100_xid_count_clock_reasons_and_ecc_reach_gpu_health(
    serve: Callable[[list[str]], str],
) -> None:
    url = serve([fixture("dcgm_h100_t0.prom"), fixture("dcgm_h100_t1.prom")])
    first, second = scrape_all(url, 2)
    assert [g.xid for g in gpus(first)] == [None, None]
    g0, g1 = sorted(gpus(first), key=lambda g: g.gpu_index)
    assert (g0.host, g0.sm_util_pct, g0.mem_used_mib, g0.mem_total_mib) == (
        "h100-node-07",
        97.0,
        77068.0,
        77068.0 + 4012.0,
    )
    assert (g0.power_w, g0.power_limit_w, g0.temp_c, g0.sm_clock_mhz) == (612.4, 700.0, 61.0, 1980)
    assert g1.clocks_event_reasons == 0x4  # SW power cap: busy, not broken
    # 15 s later: two XID 79s in the exporter's window -> two samples, each with its XID.
    bad = [g for g in gpus(second) if g.gpu_uuid == GPU1]
    assert [g.xid for g in bad] == [79, 79]
    assert bad[0].clocks_event_reasons == 0x8 | 0x40
    assert (bad[0].ecc_dbe_total, bad[0].ecc_sbe_total, bad[0].temp_c) == (1, 3, 91.0)
    # Row remap has no GpuSample column: it passes through, named by host and GPU.
    rows = metric(second, "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS_total:rate", gpu_uuid=GPU1)
    assert rows.value == pytest.approx(1 / 15)
    assert rows.labels["host"] == "h100-node-07" and "UUID" not in rows.labels

    det = GpuHealthDetector()
    det.update(GpuColumns.from_rows(gpus(first)))
    findings = det.update(GpuColumns.from_rows(gpus(second))).findings
    kinds = {f.kind for f in findings if f.series.get("gpu_uuid") == GPU1 and f.anomalous}
    assert any("xid" in k for k in kinds), findings
    assert any("ecc" in k for k in kinds), findings
    assert not [f for f in findings if f.anomalous and f.series.get("gpu_uuid") != GPU1]


def test_dcgm_last_xid_latch_primes_then_reports_a_change(
    serve: Callable[[list[str]], str],
) -> None:
    def no_count(text: str) -> str:
        return "\n".join(ln for ln in text.splitlines() if "DCGM_EXP_XID" not in ln) + "\n"

    t1 = no_count(fixture("dcgm_h100_t1.prom"))
    # The latch already reads 79 on the first scrape: old news, not reported; then a 48.
    url = serve([t1, t1, t1.replace("} 79\n", "} 48\n")])
    first, same, changed = scrape_all(url, 3)
    assert [g.xid for g in gpus(first)] == [None, None]
    assert [g.xid for g in gpus(same)] == [None, None]
    assert sorted(g.xid or 0 for g in gpus(changed)) == [0, 48]


def test_dcgm_literal_l40s_scrape(serve: Callable[[list[str]], str]) -> None:
    url = serve([fixture("dcgm_l40s.prom")])
    clock = StepClock()
    scraper = Scraper(url, lambda s: None, clock=clock)
    (g,) = gpus(scraper.scrape_once())
    assert (g.host, g.gpu_index, g.gpu_uuid) == (
        "gpu1-wl8sg",
        0,
        "GPU-5b4e07f6-3a86-4340-039d-25f2a83cdc43",
    )
    # total = used + free + reserved, as nvidia-smi counts it
    assert (g.mem_used_mib, g.mem_total_mib) == (0.0, 45459.0 + 608.0)
    assert (g.temp_c, g.power_w, g.sm_clock_mhz, g.power_limit_w) == (32.0, 35.686, 210.0, 0.0)
    assert scraper.dcgm.missing == {}
    clock.now += 15
    again = scraper.scrape_once()
    tensor = metric(again, "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE")  # DCP fields pass through
    assert tensor.labels["gpu_uuid"] == g.gpu_uuid and tensor.labels["host"] == "gpu1-wl8sg"
    assert metric(again, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total:rate").value == 0.0


def test_dcgm_gpu_without_core_fields_passes_through(serve: Callable[[list[str]], str]) -> None:
    text = "\n".join(
        ln for ln in fixture("dcgm_l40s.prom").splitlines() if "DCGM_FI_DEV_GPU_UTIL" not in ln
    )
    url = serve([text])
    (only,) = scrape_all(url, 1)
    assert not gpus(only)
    assert metric(only, "DCGM_FI_DEV_FB_FREE").value == 45459.0


def test_vllm_families_become_canonical_per_model_series(serve: Callable[[list[str]], str]) -> None:
    url = serve([fixture("vllm_0_11_t0.prom"), fixture("vllm_0_11_t1.prom")])
    first, second = scrape_all(url, 2)
    instance = url.split("/")[2]
    who = {"model": LLAMA, "instance": instance, "server": "vllm"}
    assert metric(first, "llm_queue_depth", **who).value == 0.0
    assert metric(second, "llm_queue_depth", **who).value == 9.0
    assert metric(second, "llm_running_requests", **who).value == 16.0
    assert metric(second, "llm_kv_cache_usage_ratio", **who).value == pytest.approx(0.9375)
    # The window holds 20 requests with TTFT 0.9 s: all in the (0.75, 1.0] bucket.
    p95 = metric(second, "llm_ttft_seconds:p95", **who).value
    assert p95 == pytest.approx(0.75 + 0.25 * 19 / 20)
    assert metric(second, "llm_ttft_seconds:rate", **who).value == pytest.approx(20 / 15)
    e2e = metric(second, "llm_e2e_latency_seconds:p50", **who).value
    assert e2e == pytest.approx(2.5 + 2.5 * 10 / 20)
    # inter_token_latency wins llm_tpot_seconds; the deprecated twin keeps its own name.
    assert metric(second, "llm_tpot_seconds:p50", **who).value == pytest.approx(0.025 + 0.025 / 2)
    assert metric(second, "vllm:time_per_output_token_seconds:p50").labels["model_name"] == LLAMA
    assert not [
        s
        for s in second
        if isinstance(s, MetricSample) and "model_name" in s.labels and s.name.startswith("llm_")
    ]


def test_sglang_literal_docs_scrape(serve: Callable[[list[str]], str]) -> None:
    t0 = fixture("sglang_docs_llama31_8b.prom")
    # 15 s later 100 more requests, all with TTFT in (1.0, 2.5]: add them to that bucket up.
    t1 = t0
    for le, count in (
        ("2.5", "140.0"),
        ("5.0", "314.0"),
        ("7.5", "941.0"),
        ("10.0", "1330.0"),
        ("15.0", "1970.0"),
        ("20.0", "2326.0"),
        ("25.0", "2417.0"),
        ("30.0", "2513.0"),
        ("+Inf", "11008.0"),
    ):
        old = f'sglang:time_to_first_token_seconds_bucket{{le="{le}",model_name="{LLAMA}"}} {count}'
        assert old in t1
        t1 = t1.replace(old, old.replace(f"}} {count}", f"}} {float(count) + 100}"))
    t1 = t1.replace(
        '_count{model_name="' + LLAMA + '"} 11008.0', '_count{model_name="' + LLAMA + '"} 11108.0'
    )
    url = serve([t0, t1])
    first, second = scrape_all(url, 2)
    who = {"model": LLAMA, "server": "sglang"}
    assert metric(first, "llm_queue_depth", **who).value == 2826.0
    assert metric(first, "llm_running_requests", **who).value == 162.0
    assert metric(first, "llm_kv_cache_usage_ratio", **who).value == 0.28
    assert metric(first, "sglang:cache_hit_rate").value == pytest.approx(0.0075075526)
    assert metric(second, "llm_ttft_seconds:p50", **who).value == pytest.approx(1.0 + 1.5 * 0.5)
    assert metric(second, "llm_ttft_seconds:rate", **who).value == pytest.approx(100 / 15)


def test_tgi_has_no_model_label_so_the_scraper_names_it(serve: Callable[[list[str]], str]) -> None:
    url = serve([fixture("tgi_t0.prom"), fixture("tgi_t1.prom")])
    _, second = scrape_all(url, 2, model="bigcode/starcoder2-15b")
    who = {"model": "bigcode/starcoder2-15b", "server": "tgi"}
    assert metric(second, "llm_queue_depth", **who).value == 14.0
    assert metric(second, "llm_running_requests", **who).value == 32.0
    # 10 requests at 2.9 s: bucket bounds are 0.0001 * 1.5^k; 2.9 falls in (2.5629, 3.8443].
    p50 = metric(second, "llm_e2e_latency_seconds:p50", **who).value
    assert 2.56 < p50 < 3.85
    assert metric(second, "llm_tpot_seconds:rate", **who).value == pytest.approx(10 / 15)
    assert metric(second, "tgi_request_success_total:rate").value == pytest.approx(10 / 15)
    untitled = scrape_all(url, 1)[0]
    assert metric(untitled, "llm_queue_depth", server="tgi").labels["model"] == "unknown"


def test_raw_mapping_keeps_exporter_names(serve: Callable[[list[str]], str]) -> None:
    url = serve([fixture("dcgm_l40s.prom")])
    (only,) = scrape_all(url, 1, mapping="raw")
    assert not gpus(only)
    assert metric(only, "DCGM_FI_DEV_GPU_TEMP").labels["UUID"].startswith("GPU-5b4e")
    with pytest.raises(ValueError, match="mapping"):
        Scraper(url, lambda s: None, mapping="smart")


def test_gpu_samples_and_metrics_go_to_their_topics(
    serve: Callable[[list[str]], str],
    embedded_broker: str,
    topic_name: str,
    consume_all: Callable[..., list[Record]],
) -> None:
    url = serve([fixture("dcgm_h100_t0.prom"), fixture("dcgm_h100_t1.prom")])
    gpu_topic = topic_name + ".gpu"
    pub = MetricPublisher({"bootstrap.servers": embedded_broker}, topic_name, gpu_topic)
    clock = StepClock()
    scraper = Scraper(url, pub, clock=clock)
    sent = scraper.scrape_once()
    clock.now += 15
    sent += scraper.scrape_once()
    assert pub.flush(10) == 0
    n_gpu = len(gpus(sent))
    assert n_gpu == 5
    got = [GpuSample.model_validate_json(r.value) for r in consume_all(gpu_topic, expected=n_gpu)]
    assert sorted(g.xid or 0 for g in got) == [0, 0, 0, 79, 79]
    assert all(r.key == b"h100-node-07" for r in consume_all(gpu_topic, expected=n_gpu))
    metrics = consume_all(topic_name, expected=len(sent) - n_gpu)
    assert len(metrics) == len(sent) - n_gpu


def test_older_exporter_names_map_the_same(serve: Callable[[list[str]], str]) -> None:
    # Older dcgm-exporter releases name the clock-event field CLOCK_THROTTLE_REASONS and
    # older vLLM releases name the KV-cache gauge gpu_cache_usage_perc: the same
    # fixtures with the old names must map to the same values.
    def old_dcgm(text: str) -> str:
        return text.replace(
            "DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS"
        )

    def old_vllm(text: str) -> str:
        return text.replace("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")

    new_name = fixture("dcgm_h100_t1.prom")
    assert "DCGM_FI_DEV_CLOCKS_EVENT_REASONS" in new_name
    url = serve([old_dcgm(fixture("dcgm_h100_t0.prom")), old_dcgm(new_name)])
    _, second = scrape_all(url, 2)
    bad = [g for g in gpus(second) if g.gpu_uuid == GPU1]
    assert bad and bad[0].clocks_event_reasons == 0x8 | 0x40
    assert "vllm:kv_cache_usage_perc" in fixture("vllm_0_11_t1.prom")
    url = serve([old_vllm(fixture("vllm_0_11_t0.prom")), old_vllm(fixture("vllm_0_11_t1.prom"))])
    _, second = scrape_all(url, 2)
    who = {"model": LLAMA, "instance": url.split("/")[2], "server": "vllm"}
    assert metric(second, "llm_kv_cache_usage_ratio", **who).value == pytest.approx(0.9375)
