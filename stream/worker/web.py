"""The worker's HTTP views: /healthz, /metrics (Prometheus) and /alerts (active alerts)."""

from __future__ import annotations

from typing import Any

import orjson

from stream.metrics import CONTENT_TYPE_LATEST, WorkerMetrics
from stream.worker.ingest import BatchProcessor


def add_views(app: Any, processor: BatchProcessor, metrics: WorkerMetrics) -> None:
    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        engines = sorted(processor.pool.engines)
        body = {"status": "ok", "app": app.conf.id, "partitions": engines}
        return web.json(body)

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        processor.refresh_gauges()
        return web.bytes(metrics.render(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/alerts")
    async def active_alerts(web: Any, request: Any) -> Any:
        alerts = [
            a.model_dump(mode="json", exclude_none=True) for a in processor.pool.active_alerts()
        ]
        return web.bytes(orjson.dumps(alerts), content_type="application/json")
