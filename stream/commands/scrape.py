"""``llmwatch scrape``: a /metrics endpoint (dcgm-exporter, vLLM, SGLang, TGI, any) to events."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from schemas.durations import duration_arg


def _quantiles(text: str) -> tuple[float, ...]:
    try:
        qs = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of quantiles: {text!r}") from None
    if not qs or any(not 0 < q < 1 for q in qs):
        raise argparse.ArgumentTypeError(f"quantiles must be between 0 and 1: {text!r}")
    return qs


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "scrape",
        help="scrape a Prometheus /metrics endpoint (dcgm-exporter, vLLM, SGLang, TGI, any)",
        description=(
            "dcgm-exporter GPUs become GPU samples (the gpu_health detector's input); vLLM, "
            "SGLang and TGI families become canonical llm_* series per model and instance. "
            "The rest: gauges as they are, counters as per-second rates (<name>:rate), "
            "histograms as windowed percentiles (<family>:p50/:p90/:p95/:p99)."
        ),
    )
    p.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8000/metrics")
    p.add_argument("--interval", type=duration_arg, default=15.0, help="e.g. 15s")
    p.add_argument(
        "--duration",
        type=duration_arg,
        default=None,
        help="stop after e.g. 10m (default: run until Ctrl-C)",
    )
    p.add_argument("--prefix", action="append", default=[], help="keep only these families")
    p.add_argument("--quantiles", type=_quantiles, default=(0.5, 0.9, 0.95, 0.99), help="0.5,0.99")
    p.add_argument(
        "--map",
        choices=("auto", "raw"),
        default="auto",
        help="auto: map dcgm-exporter/vLLM/SGLang/TGI families; raw: exporter names only",
    )
    p.add_argument(
        "--model", default=None, help="model name for engines without one, e.g. TGI (default: none)"
    )
    p.add_argument(
        "--bootstrap", default=None, help="host:port[,...] (default: LLMWATCH_BOOTSTRAP_SERVERS)"
    )
    p.add_argument("--topic", default=None, help="default: LLMWATCH_TOPIC_METRICS")
    p.add_argument("--gpu-topic", default=None, help="default: LLMWATCH_TOPIC_GPU")
    p.add_argument("--stdout", action="store_true", help="print JSON lines, publish nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from connectors.scrape import MetricPublisher, Scraped, Scraper
    from schemas.models import dump_json
    from stream.settings import kafka_client_config, load_settings

    overrides = {"bootstrap_servers": args.bootstrap} if args.bootstrap else {}
    settings = load_settings(**overrides)
    publisher: MetricPublisher | None = None
    if not args.stdout:
        if not settings.bootstrap_servers:
            raise ValueError(
                "bootstrap_servers: pass --bootstrap or set LLMWATCH_BOOTSTRAP_SERVERS "
                "(or use --stdout)"
            )
        publisher = MetricPublisher(
            kafka_client_config(settings),
            args.topic or settings.topic_metrics,
            args.gpu_topic or settings.topic_gpu,
        )

    def to_stdout(sample: Scraped) -> None:
        sys.stdout.write(dump_json(sample).decode() + "\n")

    scraper = Scraper(
        args.url,
        publisher if publisher is not None else to_stdout,
        prefixes=args.prefix,
        quantiles=args.quantiles,
        mapping=args.map,
        model=args.model,
    )
    print(f"llmwatch scrape: {args.url} every {args.interval:g} s", file=sys.stderr, flush=True)
    try:
        scraper.run(args.interval, args.duration)
    finally:
        sys.stdout.flush()
        if publisher is not None:
            left = publisher.close(5.0)
            st = publisher.stats()
            print(
                f"llmwatch scrape: published {st.delivered}, failed {st.failed}, "
                f"dropped {st.dropped}, undelivered {left}; fetch failures {scraper.failures}",
                file=sys.stderr,
            )
    return 0
