"""The worker's HTTP views: /healthz, /metrics (Prometheus), /alerts (active alerts),
/api/pending (pending alerts) and /api/series (an alert's recent points)."""

from __future__ import annotations

from typing import Any

import orjson

from stream.metrics import CONTENT_TYPE_LATEST, WorkerMetrics
from stream.worker.consumer import Inbox
from stream.worker.ingest import BatchProcessor
from stream.worker.recent_series import pending_alerts, series_body
from stream.worker.resets import OffsetResets
from stream.worker.state import Progress
from stream.worker.watchdog import TrackedLock


def add_views(
    app: Any,
    processor: BatchProcessor,
    metrics: WorkerMetrics,
    progress: Progress | None = None,
    owned: set[int] | None = None,
    *,
    busy: TrackedLock | None = None,
    inbox: Inbox | None = None,
    resets: OffsetResets | None = None,
) -> None:
    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        pool = processor.pool
        engines = sorted(pool.engines)
        body: dict[str, Any] = {
            "status": "ok",
            "app": app.conf.id,
            "partitions": engines,
            # Source partition numbers this worker is assigned (engines start on first use).
            "assigned": sorted(owned) if owned is not None else engines,
            # Engines resumed from a saved snapshot rather than started fresh, and those
            # loaded and checked from one that wait for their first new event (all the
            # events read since the restart were already in the snapshot).
            "restored": sorted({p for p in pool.restored if p in pool.engines} | set(pool.checked)),
            # Engines saved to the state store at least once here: a crash resumes them.
            "saved": sorted(p for p in pool.saved_once if p in pool.engines),
            # Snapshots that could not be read (the engine started fresh): alert on this.
            "restore_failed": sorted(pool.restore_failed),
        }
        warmed = getattr(pool.warm, "last", None)
        if warmed:
            # Detectors that restored fresh (an upgrade changed their state) re-learnt
            # from history before the partition's first batch: rows, time it waited.
            body["warmup"] = {str(p): r.summary() for p, r in sorted(warmed.items())}
        if progress is not None:
            # Saved state that could not be loaded, per partition: what was wrong with
            # each generation passed over (the engine fell back or started fresh).
            body["state_restore_failures"] = {
                str(p): why for p, why in sorted(progress.state.failures.items())
            }
        if resets is not None:
            # Messages never read because retention deleted them first, per "topic/partition".
            body["offsets_skipped"] = dict(sorted(resets.skipped.items()))
        if progress is not None:
            # Last offset reflected in engine state, per assigned "topic/partition".
            mine = owned if owned is not None else {p for _, p in progress.done}
            seen = progress.seen(mine)
            body["offsets"] = {f"{t}/{p}": off for (t, p), off in sorted(seen.items())}
        if busy is not None:
            # Who holds the processing lock and for how long: a stall names itself here.
            body["busy"] = busy.state()
        if inbox is not None:
            body["inbox"] = {"records": len(inbox), "fetcher_waiting": inbox.fetcher_waiting}
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

    @app.page("/api/pending")
    async def pending(web: Any, request: Any) -> Any:
        lifecycles = {p: e.lifecycle for p, e in processor.pool.engines.items()}
        return web.bytes(orjson.dumps(pending_alerts(lifecycles)), content_type="application/json")

    @app.page("/api/series")
    async def series(web: Any, request: Any) -> Any:
        status, body = series_body(processor.recent, request.query.get("fingerprint", ""))
        return web.json(body, status=status)
