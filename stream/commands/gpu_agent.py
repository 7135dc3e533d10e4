"""``llmwatch gpu-agent``: sample every local GPU through NVML and publish to the gpu topic."""

from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import Any

from schemas.durations import duration_arg

EXIT_NO_GPU = 3


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "gpu-agent",
        help="publish NVML readings of every local GPU (and XID errors) to Kafka",
        description=(
            "Polls utilisation, memory, temperature, power, SM clock, clocks event reasons, "
            "ECC and PCIe replay counters of every GPU; XID critical errors are published "
            "as they happen. Brokers from --bootstrap or LLMWATCH_BOOTSTRAP_SERVERS."
        ),
    )
    p.add_argument("--interval", type=duration_arg, default=1.0, help="e.g. 1s, 0.5s, 1m")
    p.add_argument(
        "--duration",
        type=duration_arg,
        default=None,
        help="stop after e.g. 10m (default: run until Ctrl-C)",
    )
    p.add_argument(
        "--bootstrap", default=None, help="host:port[,...] (default: LLMWATCH_BOOTSTRAP_SERVERS)"
    )
    p.add_argument("--topic", default=None, help="default: LLMWATCH_TOPIC_GPU")
    p.add_argument(
        "--host", default=None, help="host label (default: LLMWATCH_HOST, else this machine's name)"
    )
    p.add_argument("--no-xid", action="store_true", help="do not listen for XID events")
    p.add_argument("--stdout", action="store_true", help="print JSON lines, publish nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, nvml: ModuleType | None = None) -> int:
    from connectors.gpu_agent import GpuAgent, GpuPublisher
    from connectors.nvml import NvmlUnavailable
    from schemas.models import GpuSample, dump_json
    from stream.settings import kafka_client_config, load_settings

    overrides = {"bootstrap_servers": args.bootstrap} if args.bootstrap else {}
    settings = load_settings(**overrides)
    publisher: GpuPublisher | None = None
    if not args.stdout and not settings.bootstrap_servers:
        raise ValueError(
            "bootstrap_servers: pass --bootstrap or set LLMWATCH_BOOTSTRAP_SERVERS "
            "(or use --stdout)"
        )

    def to_stdout(sample: GpuSample) -> None:
        sys.stdout.write(dump_json(sample).decode() + "\n")
        sys.stdout.flush()

    try:
        host = args.host or settings.host
        agent = GpuAgent(to_stdout, nvml, host=host, watch_xid=not args.no_xid)
        devices = agent.start()  # NVML first: no GPU means no reason to touch Kafka
    except NvmlUnavailable as exc:
        print(f"llmwatch gpu-agent: {exc}", file=sys.stderr)
        return EXIT_NO_GPU
    try:
        if not args.stdout:
            publisher = GpuPublisher(
                kafka_client_config(settings), args.topic or settings.topic_gpu
            )
            agent.publish = publisher
        xid = "on" if agent.xids is not None else "off"
        print(
            f"llmwatch gpu-agent: {len(devices)} GPU(s), every {args.interval:g} s, "
            f"XID events {xid}",
            file=sys.stderr,
            flush=True,
        )
        agent.run(args.interval, args.duration)
    finally:
        agent.stop()
        if publisher is not None:
            left = publisher.close(5.0)
            st = publisher.stats()
            print(
                f"llmwatch gpu-agent: published {st.delivered}, failed {st.failed}, "
                f"dropped {st.dropped}, undelivered {left}",
                file=sys.stderr,
            )
        if agent.reader.unsupported:
            print(
                "llmwatch gpu-agent: not supported here (defaults used): "
                + ", ".join(sorted(agent.reader.unsupported)),
                file=sys.stderr,
            )
    return 0
