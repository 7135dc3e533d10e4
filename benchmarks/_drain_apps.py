"""The two reference consumers of the throughput benchmark, each a Faust worker process.

``ceiling``: the worker's own consumer stack (Faust on aiokafka with the batch
data plane of ``stream.worker.consumer``, same fetch size) draining the topic and
doing nothing with the messages.
``naive``: what a tutorial-following user would write: one event at a time,
``InferenceEvent.model_validate_json`` and a per-series River EWMean/EWVar z-score
on log latency, alerting on |z| > 4 to a topic.

Both serve ``/count`` (events consumed so far) so the harness reads progress the
same way for all three contenders.

    python -m benchmarks._drain_apps {ceiling,naive} --bootstrap H:P --topic T --port P
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import faust

RAW: Any = faust.Schema(
    key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)
Z_ALERT = 4.0
WARMUP = 30


def build(
    mode: str,
    bootstrap: str,
    topic: str,
    port: int,
    batch: int,
    api_version: str | None = None,
) -> Any:
    extra: dict[str, Any] = {}
    if api_version is not None:
        from stream.kafka09 import apply_aiokafka_shim
        from stream.settings import Settings

        apply_aiokafka_shim(Settings(bootstrap_servers=bootstrap, broker_api_version=api_version))
        extra["broker_api_version"] = api_version
    from stream.app import WorkerApp
    from stream.worker.consumer import Inbox

    app = (WorkerApp if mode == "ceiling" else faust.App)(
        f"bench-{mode}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        topic_allow_declare=False,
        topic_disable_leader=True,
        web_port=port,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=batch,
        **extra,
    )
    source = app.topic(topic, schema=RAW)
    seen = [0]

    @app.page("/count")
    async def count(web: Any, request: Any) -> Any:
        return web.json({"count": seen[0]})

    if mode == "ceiling":
        inbox = Inbox(4 * batch)
        app.topics.add(source)
        from stream.kafka09 import is_legacy
        from stream.settings import Settings

        # The worker's own fetch wait and offset format, so the ceiling is the same client
        # configured the same.
        assert isinstance(app, WorkerApp)
        conf = Settings(bootstrap_servers=bootstrap, broker_api_version=api_version)
        app.diverted = ({topic}, inbox, conf.fetch_wait_ms, is_legacy(conf))

        @app.task
        async def drain() -> None:
            while True:
                for fetched in await inbox.take():
                    seen[0] += len(fetched.raws)

    else:
        from river.stats import EWMean, EWVar

        from schemas.models import InferenceEvent

        alerts = app.topic(f"{topic}.naive-alerts", schema=RAW)
        state: dict[tuple[str, str, str], tuple[Any, Any, list[int]]] = {}

        @app.agent(source, name="bench.naive")
        async def naive(stream: Any) -> None:
            async for value in stream:
                seen[0] += 1
                event = InferenceEvent.model_validate_json(value)
                key = (event.gateway, event.model, event.model_version)
                st = state.get(key)
                if st is None:
                    st = state[key] = (EWMean(0.02), EWVar(0.02), [0])
                mean, var, n = st
                x = math.log(max(event.latency_ms, 1e-3))
                sd = math.sqrt(var.get())
                z = (x - mean.get()) / sd if sd > 0 else 0.0
                mean.update(x)
                var.update(x)
                n[0] += 1
                if n[0] > WARMUP and abs(z) > Z_ALERT:
                    await alerts.send(key="|".join(key).encode(), value=value)

    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("ceiling", "naive"))
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--api-version", default=None, help="broker_api_version (e.g. 0.9.0.1)")
    args = ap.parse_args(argv)
    app = build(
        args.mode,
        args.bootstrap,
        args.topic,
        args.port,
        args.batch,
        args.api_version,
    )
    faust.Worker(app, loglevel="warn", quiet=True).execute_from_commandline()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
