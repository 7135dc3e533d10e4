"""The worker's recent points per alert and its pending alerts, and the notifier's proxy
to them, over real HTTP (aiohttp servers on loopback)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from detectors.base import Finding
from stream.lifecycle import Lifecycle
from stream.lifecycle_config import LifecycleConfig
from stream.notify.worker_proxy import WorkerProxy
from stream.worker.recent_series import RecentSeries, pending_alerts, series_body


def _finding(ts: float, observed: float, model: str = "m1", score: float = 0.9) -> Finding:
    return Finding(
        detector="ewma",
        kind="latency.ttft_p99",
        series={"model": model},
        ts=ts,
        score=score,
        anomalous=score >= 0.5,
        observed=observed,
        expected=1.0,
        lower=0.5,
        upper=1.5,
        explanation=f"ttft {observed}",
    )


def test_each_fingerprint_keeps_its_last_points_in_time_order() -> None:
    rs = RecentSeries(points=3)
    rs.record([_finding(t, float(t)) for t in (5.0, 1.0, 4.0, 2.0, 3.0)])
    rs.record([_finding(math.nan, 9.0)])  # no time: nowhere on a chart
    (fp,) = rs._rings
    assert [p[0] for p in rs.get(fp)] == [2.0, 3.0, 4.0]  # the 3 newest arrivals, sorted
    assert rs.get(fp)[0] == (2.0, 2.0, 1.0, 0.5, 1.5)
    assert rs.get("nope") == []


def test_the_least_recently_fed_series_goes_first() -> None:
    rs = RecentSeries(points=2, max_series=2)
    rs.record([_finding(1.0, 1.0, "a"), _finding(1.0, 1.0, "b")])
    fp_a, fp_b = rs._rings
    rs.record([_finding(2.0, 1.0, "a"), _finding(2.0, 1.0, "c")])  # a fed again: b goes
    assert len(rs) == 2 and rs.get(fp_b) == [] and len(rs.get(fp_a)) == 2
    with pytest.raises(ValueError):
        RecentSeries(points=0)


def test_points_are_keyed_by_the_alerts_fingerprint_and_nan_is_null() -> None:
    lc = Lifecycle(LifecycleConfig())
    f = _finding(100.0, math.inf)
    lc.observe([f], 100.0)
    rs = RecentSeries()
    rs.record([f])
    (pending,) = pending_alerts({3: lc})
    assert pending["state"] == "pending" and pending["partition"] == 3
    assert pending["labels"]["model"] == "m1" and pending["detector"] == "ewma"
    assert pending["since"].startswith("1970-01-01T00:01:40")
    assert pending["observed"] is None and pending["bounds"] == {"lower": 0.5, "upper": 1.5}
    status, body = series_body(rs, pending["fingerprint"])
    assert status == 200 and body["points"] == [
        {"ts": 100.0, "observed": None, "expected": 1.0, "lower": 0.5, "upper": 1.5}
    ]
    assert series_body(rs, "0" * 16)[0] == 404
    assert series_body(rs, "")[0] == 400


@asynccontextmanager
async def _serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _worker_app(lc: Lifecycle, rs: RecentSeries) -> web.Application:
    """The worker's two views, on the functions its Faust pages call."""

    async def pending(request: web.Request) -> web.Response:
        return web.json_response(pending_alerts({0: lc}))

    async def series(request: web.Request) -> web.Response:
        status, body = series_body(rs, request.query.get("fingerprint", ""))
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/api/pending", pending)
    app.router.add_get("/api/series", series)
    return app


def _notifier_app(worker_url: str) -> web.Application:
    app = web.Application()
    WorkerProxy(worker_url).register(app)
    return app


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as resp:
        return resp.status, await resp.json()


def test_the_notifier_relays_pending_alerts_and_series_from_the_worker() -> None:
    lc, rs = Lifecycle(LifecycleConfig()), RecentSeries()
    findings = [_finding(100.0 + i, 1.0 + i) for i in range(5)]
    lc.observe(findings, 104.0)
    rs.record(findings)
    fp = lc.pending()[0]

    async def main() -> None:
        async with (
            _serve(_worker_app(lc, rs)) as worker,
            _serve(_notifier_app(worker + "/")) as notifier,
            aiohttp.ClientSession() as http,
        ):
            status, body = await _get(http, f"{notifier}/api/pending")
            assert status == 200 and body["configured"] is True
            assert [p["fingerprint"] for p in body["pending"]] == [fp]
            # A pending alert shows what it will page with: its most anomalous finding,
            # the earliest of equal scores (all five score 0.9).
            assert body["pending"][0]["observed"] == 1.0
            status, body = await _get(http, f"{notifier}/api/series?fingerprint={fp}")
            assert status == 200 and [p["observed"] for p in body["points"]] == [1, 2, 3, 4, 5]
            status, body = await _get(http, f"{notifier}/api/series?fingerprint=ffff")
            assert status == 404 and "no recent points" in body["error"]
            status, body = await _get(http, f"{notifier}/api/series?fingerprint=a/../b")
            assert status == 400

    asyncio.run(main())


def test_without_a_worker_or_with_one_gone_the_console_is_told_plainly() -> None:
    async def main() -> None:
        async with _serve(web.Application()) as gone, aiohttp.ClientSession() as http:
            pass  # the port is closed again: nothing listens there now
        async with (
            _serve(_notifier_app("")) as alone,
            _serve(_notifier_app(gone)) as orphan,
            aiohttp.ClientSession() as http,
        ):
            status, body = await _get(http, f"{alone}/api/pending")
            assert status == 200 and body == {"configured": False, "pending": []}
            assert (await _get(http, f"{alone}/api/series?fingerprint=ab"))[0] == 404
            status, body = await _get(http, f"{orphan}/api/pending")
            assert status == 502 and body["configured"] is True
            assert "unreachable" in body["error"] and body["pending"] == []
            status, body = await _get(http, f"{orphan}/api/series?fingerprint=ab")
            assert status == 502 and "unreachable" in body["error"]

    asyncio.run(main())
