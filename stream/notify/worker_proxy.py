"""The notifier's window onto a worker: pending alerts and an alert's recent series.

Pending alerts and series points live in the worker only (events carry transitions);
the console asks its own origin, and this proxies to ``LLMWATCH_WORKER_URL`` so no
cross-origin request or CORS rule is needed. Not configured: ``/api/pending`` answers
``{"configured": false}`` and the console leaves those parts out. Unreachable: 502
with the reason, and the console says so quietly instead of failing the page.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger("llmwatch.notify")

TIMEOUT_S = 2.0
_FINGERPRINT = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


class WorkerProxy:
    def __init__(self, worker_url: str) -> None:
        self.base = worker_url.rstrip("/")
        self._http: aiohttp.ClientSession | None = None

    def register(self, app: web.Application) -> None:
        app.router.add_get("/api/pending", self.pending)
        app.router.add_get("/api/series", self.series)
        app.on_cleanup.append(self._close)

    async def _close(self, app: web.Application) -> None:
        if self._http is not None:
            await self._http.close()

    async def _fetch(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        async with self._http.get(self.base + path, params=params) as resp:
            return resp.status, await resp.json(content_type=None)

    async def _relay(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        try:
            return await self._fetch(path, params)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # ValueError: the worker answered something that is not JSON.
            reason = f"worker at {self.base} unreachable: {type(exc).__name__}: {exc}"
            log.debug("%s", reason)
            return 502, {"error": reason}

    async def pending(self, request: web.Request) -> web.Response:
        if not self.base:
            return web.json_response({"configured": False, "pending": []})
        status, body = await self._relay("/api/pending", {})
        if status != 200 or not isinstance(body, list):
            error = body.get("error") if isinstance(body, dict) else None
            return web.json_response(
                {"configured": True, "pending": [], "error": error or f"worker: HTTP {status}"},
                status=502,
            )
        return web.json_response({"configured": True, "pending": body, "worker": self.base})

    async def series(self, request: web.Request) -> web.Response:
        fp = request.query.get("fingerprint", "")
        if not _FINGERPRINT.match(fp):
            return web.json_response(
                {"error": "fingerprint: expected 1-64 [0-9A-Za-z_-]"}, status=400
            )
        if not self.base:
            return web.json_response(
                {"error": "no worker configured (LLMWATCH_WORKER_URL)"}, status=404
            )
        status, body = await self._relay("/api/series", {"fingerprint": fp})
        return web.json_response(body, status=status)
