"""The notifier's HTTP API: silences, acks, alerts, /healthz, /metrics.

Reads are open. Writes need ``Authorization: Bearer <LLMWATCH_API_TOKEN>``; with no
token configured they are refused outright, so an unconfigured notifier can never
be silenced by whoever reaches its port.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from stream.alerting.labels import alert_labels
from stream.alerting.silences import Ack, Silence, ack_key, new_silence_id, silence_key
from stream.metrics import CONTENT_TYPE_LATEST

from .api_models import AckRequest, SilenceRequest, describe
from .console import add_console
from .kafka_io import KafkaIOError
from .service import NotifierService
from .worker_proxy import WorkerProxy

log = logging.getLogger("llmwatch.notify")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class NotifierAPI:
    def __init__(self, service: NotifierService) -> None:
        self.service = service
        token = service.settings.api_token
        raw = token.get_secret_value() if token is not None else ""
        self._token = raw.encode() if raw else None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.prometheus)
        app.router.add_get("/api/silences", self.list_silences)
        app.router.add_post("/api/silences", self.guard(self.add_silence))
        app.router.add_delete("/api/silences/{id}", self.guard(self.expire_silence))
        app.router.add_get("/api/acks", self.list_acks)
        app.router.add_post("/api/acks", self.guard(self.add_ack))
        app.router.add_get("/api/alerts", self.list_alerts)
        # Alertmanager's v2 dialect on the same state (amtool, karma, Grafana).
        from .am_api import AlertmanagerAPI

        AlertmanagerAPI(self.service, self.guard).register(app)
        # Pending alerts and series charts, from the worker that has them.
        WorkerProxy(self.service.settings.worker_url).register(app)
        add_console(app)  # the web console at /, over the routes above
        return app

    # -- auth -----------------------------------------------------------------------------
    def guard(self, handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            if self._token is None:
                return _error(
                    403,
                    "changes are disabled: set LLMWATCH_API_TOKEN on the notifier to allow them",
                )
            given = request.headers.get("Authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                value.strip().encode(), self._token
            ):
                return web.json_response(
                    {"error": "missing or wrong bearer token"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="llmwatch"'},
                )
            return await handler(request)

        return checked

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            data = await request.json()
        except (ValueError, UnicodeDecodeError, RecursionError):
            # RecursionError: JSON nested deeper than the parser's stack (e.g. [[[[...]]]]).
            return _error(400, "body: not valid JSON")
        if not isinstance(data, dict):
            return _error(400, "body: expected a JSON object")
        return data

    async def _publish(self, key: str, value: bytes | None) -> web.Response | None:
        try:
            await self.service.publish_state(key, value)
        except KafkaIOError as exc:
            log.error("could not store %s: %s", key, exc)
            return _error(503, "could not store it on the silences topic; try again")
        return None

    # -- views ----------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        svc = self.service
        assigned = sorted(svc.consumer.assigned) if svc.consumer is not None else []
        status = "ok" if svc.healthy else ("failed" if svc.ready else "starting")
        body = {"status": status, "partitions": assigned}
        return web.json_response(body, status=200 if svc.healthy else 503)

    async def prometheus(self, request: web.Request) -> web.Response:
        await self.service.refresh_metrics()
        return web.Response(
            body=self.service.metrics.render(), content_type=CONTENT_TYPE_LATEST.split(";")[0]
        )

    async def list_silences(self, request: web.Request) -> web.Response:
        now = self.service.clock.now()
        show_all = request.query.get("all", "") in ("1", "true", "yes")
        out = [
            {**s.to_dict(), "state": s.state(now)}
            for s in self.service.state.silences()
            if show_all or s.ends_at > now
        ]
        return web.json_response(out)

    async def add_silence(self, request: web.Request) -> web.StreamResponse:
        data = await self._body(request)
        if isinstance(data, web.Response):
            return data
        now = self.service.clock.now()
        try:
            req = SilenceRequest.model_validate(data)
            starts, ends = req.window(now)
        except ValidationError as exc:
            return _error(400, describe(exc))
        except ValueError as exc:
            return _error(400, str(exc))
        content = {"matchers": [str(m) for m in req.matchers], "by": req.created_by}
        sil = Silence(
            new_silence_id(content, time.time_ns()),
            tuple(req.matchers),
            starts,
            ends,
            req.created_by,
            req.comment,
        )
        failed = await self._publish(silence_key(sil.id), json.dumps(sil.to_dict()).encode())
        return failed or web.json_response(sil.to_dict(), status=201)

    async def expire_silence(self, request: web.Request) -> web.StreamResponse:
        sid = request.match_info["id"]
        sil = self.service.state.get(sid)
        if sil is None:
            return _error(404, f"id: no silence {sid!r}")
        now = self.service.clock.now()
        ended = Silence(
            sil.id,
            sil.matchers,
            min(sil.starts_at, now),
            min(sil.ends_at, now),
            sil.created_by,
            sil.comment,
        )
        failed = await self._publish(silence_key(sid), json.dumps(ended.to_dict()).encode())
        return failed or web.json_response(ended.to_dict())

    async def list_acks(self, request: web.Request) -> web.Response:
        now = self.service.clock.now()
        return web.json_response([a.to_dict() for a in self.service.state.acks(now)])

    async def add_ack(self, request: web.Request) -> web.StreamResponse:
        data = await self._body(request)
        if isinstance(data, web.Response):
            return data
        try:
            req = AckRequest.model_validate(data)
        except ValidationError as exc:
            return _error(400, describe(exc))
        alert_id = req.alert_id
        if alert_id is None:
            recent = self.service.recent
            alert = recent.get(req.fingerprint) if recent is not None else None
            if alert is None:
                return _error(
                    404,
                    f"fingerprint: no firing alert {req.fingerprint!r} seen by this notifier "
                    "(give alert_id to acknowledge it anyway)",
                )
            alert_id = alert.alert_id
        now = self.service.clock.now()
        ttl = req.expires_in_s or self.service.config.default_ack_ttl_s
        ack = Ack(req.fingerprint, alert_id, req.by, now, now + ttl, req.comment)
        failed = await self._publish(ack_key(ack.fingerprint), json.dumps(ack.to_dict()).encode())
        return failed or web.json_response(ack.to_dict(), status=201)

    async def list_alerts(self, request: web.Request) -> web.Response:
        svc = self.service
        recent = svc.recent
        if recent is None:
            return web.json_response([])
        now = svc.clock.now()
        out = []
        for fp, alert in recent.active.items():
            ack = svc.state.ack_for(fp, now)
            out.append(
                {
                    "alert": alert.model_dump(mode="json", exclude_none=True),
                    "silenced_by": svc.state.silenced_by(alert_labels(alert), now),
                    "acknowledged": ack.to_dict() if ack is not None else None,
                    "deliveries": recent.outcomes.get(fp, {}),
                }
            )
        return web.json_response(out)


async def serve(service: NotifierService, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start the API; returns the runner (for cleanup) and the port it listens on."""
    runner = web.AppRunner(NotifierAPI(service).app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)
