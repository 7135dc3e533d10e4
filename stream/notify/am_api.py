"""The notifier's API in Alertmanager's v2 dialect, for amtool, karma and Grafana.

``/api/v2/status``, ``/api/v2/receivers``, ``GET``/``POST /api/v2/alerts`` (posted
alerts go onto the alerts topic: see am_post), ``/api/v2/alerts/groups``,
``GET``/``POST /api/v2/silences`` and ``GET``/``DELETE /api/v2/silence/{id}``, shaped as
``../shared/specs/alertmanager-api-v2.openapi.yaml`` says. Alerts and groups are the
pipeline's (what is firing now, and whether inhibition or a silence holds it);
silences are the same store the llmwatch endpoints (``/api/silences``) write, so both
dialects see one set. Writes need the same bearer token. Acknowledgements have no
Alertmanager counterpart (its issue #1860) and stay on ``/api/acks``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import yaml
from aiohttp import web
from pydantic import ValidationError

from schemas.models import AlertStatus, dump_json
from stream.alerting.groups import Episode
from stream.alerting.labels import topic_key
from stream.alerting.matchers import Matcher, compile_regex, match_all, parse_matchers
from stream.alerting.silences import Silence, new_silence_id, silence_key

from .am_post import postable_alerts
from .api_models import describe
from .service import NotifierService

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
VERSION = "0.25.0-llmwatch"  # the Alertmanager API level amtool 0.25 expects


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def _epoch(text: Any, field: str) -> float:
    if not isinstance(text, str):
        raise ValueError(f"{field}: expected an RFC 3339 date-time")
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{field}: not an RFC 3339 date-time: {text[:64]!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def _error(status: int, message: str) -> web.Response:
    # Alertmanager answers errors as a JSON string.
    return web.json_response(message, status=status)


def _flag(request: web.Request, name: str, default: bool = True) -> bool:
    raw = request.query.get(name)
    return default if raw is None else raw.lower() in ("1", "true", "yes")


def _matcher_json(m: Matcher) -> dict[str, Any]:
    return {"name": m.name, "value": m.value, "isRegex": m.is_regex, "isEqual": m.is_equal}


def silence_json(sil: Silence, now: float) -> dict[str, Any]:
    return {
        "id": sil.id,
        "matchers": [_matcher_json(m) for m in sil.matchers],
        "startsAt": _iso(sil.starts_at),
        "endsAt": _iso(sil.ends_at),
        "createdBy": sil.created_by,
        "comment": sil.comment,
        "annotations": {},
        "status": {"state": sil.state(now)},
        "updatedAt": _iso(sil.starts_at),
    }


class AlertmanagerAPI:
    def __init__(self, service: NotifierService, guard: Callable[[Handler], Handler]) -> None:
        self.service = service
        self._guard = guard
        self._started = time.time()

    def register(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/api/v2/status", self.status)
        r.add_get("/api/v2/receivers", self.receivers)
        r.add_get("/api/v2/alerts", self.alerts)
        r.add_post("/api/v2/alerts", self._guard(self.post_alerts))
        r.add_get("/api/v2/alerts/groups", self.groups)
        r.add_get("/api/v2/silences", self.silences)
        r.add_post("/api/v2/silences", self._guard(self.post_silence))
        r.add_get("/api/v2/silence/{id}", self.get_silence)
        r.add_delete("/api/v2/silence/{id}", self._guard(self.delete_silence))

    # -- status ---------------------------------------------------------------------------
    async def status(self, request: web.Request) -> web.Response:
        config = self.service.config.model_dump(mode="json", by_alias=True, exclude_none=True)
        return web.json_response(
            {
                "cluster": {"status": "disabled", "peers": []},
                "versionInfo": {
                    "version": VERSION,
                    "revision": "llmwatch",
                    "branch": "main",
                    "buildUser": "llmwatch",
                    "buildDate": "",
                    "goVersion": "none (llmwatch notifier, Python)",
                },
                "config": {"original": yaml.safe_dump(config, sort_keys=False)},
                "uptime": _iso(self._started),
            }
        )

    async def receivers(self, request: web.Request) -> web.Response:
        return web.json_response([{"name": r.name} for r in self.service.config.receivers])

    # -- alerts ---------------------------------------------------------------------------
    async def post_alerts(self, request: web.Request) -> web.StreamResponse:
        from .kafka_io import KafkaIOError

        try:
            data = await request.json()
        except (ValueError, UnicodeDecodeError, RecursionError):
            return _error(400, "body: not valid JSON")
        try:
            timeout = self.service.config.resolve_timeout_s
            alerts = postable_alerts(data, self.service.clock.now(), timeout)
        except ValueError as exc:
            return _error(400, str(exc))
        topic, producer = self.service.settings.topic_alerts, self.service.producer
        if producer is None:
            return _error(503, "the notifier is not started; try again")
        try:
            for alert in alerts:
                await producer.send(topic, topic_key(alert), dump_json(alert))
        except KafkaIOError:
            # Those before the failure are on the topic; a retry repeats them, and the
            # ledger and the pipeline's fingerprint dedup absorb the repeat.
            return _error(503, "could not write the alerts to the alerts topic; try again")
        return web.Response(status=200)

    def _alert_json(self, ep: Episode, now: float) -> dict[str, Any]:
        pipeline = self.service.pipeline
        a = ep.alert
        silenced = self.service.state.silenced_by(ep.labels, now)
        inhibited = pipeline.inhibited.get(a.fingerprint)
        suppressed = silenced is not None or inhibited is not None
        ends = a.ends_at.timestamp() if a.ends_at is not None else now + 300.0
        body: dict[str, Any] = {
            "labels": dict(ep.labels),
            "annotations": {k: v for k, v in (("summary", a.summary),) if v},
            "startsAt": _iso(a.starts_at.timestamp()),
            "endsAt": _iso(ends),
            "updatedAt": _iso(now),
            "fingerprint": a.fingerprint,
            "receivers": [{"name": n} for n in dict.fromkeys(o.receiver for o in ep.routes)],
            "status": {
                "state": "suppressed" if suppressed else "active",
                "silencedBy": [silenced] if silenced else [],
                "inhibitedBy": [inhibited.source] if inhibited else [],
                "mutedBy": [],
            },
        }
        if a.links.dashboard and a.links.dashboard.startswith(("http://", "https://")):
            body["generatorURL"] = a.links.dashboard
        return body

    def _wanted(self, request: web.Request) -> Callable[[Episode, dict[str, Any]], bool]:
        """The query's filters, as Alertmanager reads them; a bad one raises ValueError."""
        matchers = parse_matchers(request.query.getall("filter", []))
        receiver = request.query.get("receiver")
        receiver_re = compile_regex(receiver) if receiver else None
        show = {
            "active": _flag(request, "active"),
            "silenced": _flag(request, "silenced"),
            "inhibited": _flag(request, "inhibited"),
        }

        def wanted(ep: Episode, body: dict[str, Any]) -> bool:
            st = body["status"]
            if st["silencedBy"] and not show["silenced"]:
                return False
            if st["inhibitedBy"] and not show["inhibited"]:
                return False
            if st["state"] == "active" and not show["active"]:
                return False
            if receiver_re is not None and not any(
                receiver_re.match(r["name"]) for r in body["receivers"]
            ):
                return False
            return match_all(matchers, ep.labels)

        return wanted

    async def alerts(self, request: web.Request) -> web.Response:
        try:
            wanted = self._wanted(request)
        except (ValueError, ValidationError) as exc:
            return _error(400, f"filter: {exc}")
        now = self.service.clock.now()
        out = []
        for fp in sorted(self.service.pipeline.episodes):
            ep = self.service.pipeline.episodes[fp]
            if ep.alert.status != AlertStatus.FIRING:
                continue
            body = self._alert_json(ep, now)
            if wanted(ep, body):
                out.append(body)
        return web.json_response(out)

    async def groups(self, request: web.Request) -> web.Response:
        try:
            wanted = self._wanted(request)
        except (ValueError, ValidationError) as exc:
            return _error(400, f"filter: {exc}")
        now = self.service.clock.now()
        out = []
        for grp in sorted(self.service.pipeline.groups, key=lambda g: g.key):
            alerts = [
                body
                for fp in sorted(grp.members)
                if wanted(grp.members[fp], body := self._alert_json(grp.members[fp], now))
            ]
            if alerts:
                out.append(
                    {
                        "labels": dict(grp.labels),
                        "routeLabels": {},
                        "receiver": {"name": grp.opts.receiver},
                        "alerts": alerts,
                    }
                )
        return web.json_response(out)

    # -- silences -------------------------------------------------------------------------
    async def silences(self, request: web.Request) -> web.Response:
        try:
            matchers = parse_matchers(request.query.getall("filter", []))
        except (ValueError, ValidationError) as exc:
            return _error(400, f"filter: {exc}")
        now = self.service.clock.now()
        out = []
        for sil in self.service.state.silences():
            mine = {m.name: m.value for m in sil.matchers}
            if all(m.matches(mine) for m in matchers):
                out.append(silence_json(sil, now))
        return web.json_response(out)

    async def get_silence(self, request: web.Request) -> web.Response:
        sil = self.service.state.get(request.match_info["id"])
        if sil is None:
            return _error(404, "silence not found")
        return web.json_response(silence_json(sil, self.service.clock.now()))

    async def post_silence(self, request: web.Request) -> web.StreamResponse:
        try:
            data = await request.json()
        except (ValueError, UnicodeDecodeError, RecursionError):
            return _error(400, "body: not valid JSON")
        now = self.service.clock.now()
        try:
            sil = self._new_silence(data, now)
        except (ValueError, ValidationError) as exc:
            text = describe(exc) if isinstance(exc, ValidationError) else str(exc)
            return _error(400, text)
        old = data.get("id") if isinstance(data, dict) else None
        if old and self.service.state.get(str(old)) is None:
            return _error(404, f"silence {old!r} not found")
        if old:
            # Alertmanager's update: the old one ends now, a new id takes over.
            await self._store(self._expired(self.service.state.get(str(old)), now))  # type: ignore[arg-type]
        failed = await self._store(sil)
        return failed or web.json_response({"silenceID": sil.id})

    async def delete_silence(self, request: web.Request) -> web.StreamResponse:
        sil = self.service.state.get(request.match_info["id"])
        if sil is None:
            return _error(404, "silence not found")
        failed = await self._store(self._expired(sil, self.service.clock.now()))
        return failed or web.Response(status=200)

    @staticmethod
    def _expired(sil: Silence, now: float) -> Silence:
        ends = min(sil.ends_at, now)
        return Silence(
            sil.id, sil.matchers, min(sil.starts_at, ends), ends, sil.created_by, sil.comment
        )

    @staticmethod
    def _new_silence(data: Any, now: float) -> Silence:
        if not isinstance(data, dict):
            raise ValueError("body: expected a postableSilence object")
        for field in ("matchers", "startsAt", "endsAt", "createdBy"):
            if field not in data:
                raise ValueError(f"{field}: required")
        if not isinstance(data["matchers"], list) or not data["matchers"]:
            raise ValueError("matchers: at least one")
        matchers = parse_matchers(data["matchers"])
        starts = max(_epoch(data["startsAt"], "startsAt"), now)
        ends = _epoch(data["endsAt"], "endsAt")
        if ends <= starts:
            raise ValueError("endsAt: must be after startsAt (and now)")
        created_by, comment = str(data["createdBy"]), str(data.get("comment", ""))
        if not created_by:
            raise ValueError("createdBy: required")
        content = {"matchers": [str(m) for m in matchers], "by": created_by}
        sid = new_silence_id(content, time.time_ns())
        return Silence(sid, matchers, starts, ends, created_by[:128], comment[:1024])

    async def _store(self, sil: Silence) -> web.Response | None:
        from .kafka_io import KafkaIOError

        try:
            await self.service.publish_state(
                silence_key(sil.id), json.dumps(sil.to_dict()).encode()
            )
        except KafkaIOError:
            return _error(503, "could not store the silence on the silences topic; try again")
        return None
