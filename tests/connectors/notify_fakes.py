"""Real local HTTP servers standing in for PagerDuty, Slack and a webhook receiver.

Each fake validates what it receives (PagerDuty: the published OpenAPI schema;
Slack: Block Kit rules) and can be scripted to answer 429 + Retry-After, 5xx,
4xx, hang until the client times out, or drop the connection.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from aiohttp import web
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from connectors.notify.base import Clock

SPEC_PATH = Path("/work/shared/specs/pagerduty-events-v2.openapi.json")


class FakeClock:
    """Time moves only when someone sleeps; sleeping never waits for the wall clock."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


@dataclass
class Reply:
    """What the fake does with one request: answer, hang, or drop the connection."""

    status: int = 0  # 0: the fake's normal success answer
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "respond"  # respond | hang | drop


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any
    at: float
    errors: list[str]


class FakeService:
    """Common scripting: a queue of replies, then ``rule`` (if set), then success."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock
        self.script: deque[Reply] = deque()
        self.rule: Callable[[Seen], Reply | None] | None = None
        self.requests: list[Seen] = []
        self._release = asyncio.Event()

    @property
    def invalid(self) -> list[str]:
        return [e for seen in self.requests for e in seen.errors]

    def plan(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def release(self) -> None:
        """Let every hung request go (its connection is then dropped)."""
        self._release.set()

    async def _record(self, request: web.Request, errors_for: Callable[[Any], list[str]]) -> Seen:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
            errors = errors_for(body)
        except ValueError as exc:
            body, errors = None, [f"body is not JSON: {exc}"]
        seen = Seen(
            request.path,
            dict(request.headers),
            raw,
            body,
            self.clock.now() if self.clock else 0.0,
            errors,
        )
        self.requests.append(seen)
        return seen

    async def _scripted(self, request: web.Request, seen: Seen) -> web.StreamResponse | None:
        reply = self.script.popleft() if self.script else None
        if reply is None and self.rule is not None:
            reply = self.rule(seen)
        if reply is None or (reply.action == "respond" and reply.status == 0):
            return None
        if reply.action == "hang":
            await self._release.wait()
        if reply.action in ("hang", "drop"):
            # After a hang the client may have gone already; then there is nothing to drop.
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        return web.Response(status=reply.status, text=reply.body, headers=reply.headers)

    def app(self) -> web.Application:
        raise NotImplementedError

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            self._release.set()
            await runner.cleanup()


def _pagerduty_validator() -> jsonschema.protocols.Validator:
    spec = json.loads(SPEC_PATH.read_text())
    registry = Registry().with_resource(
        "urn:pd-spec", Resource.from_contents(spec, default_specification=DRAFT7)
    )
    pointer = "/paths/~1enqueue/post/requestBody/content/application~1json/schema"
    return jsonschema.Draft7Validator({"$ref": f"urn:pd-spec#{pointer}"}, registry=registry)


class FakePagerDuty(FakeService):
    """POST /v2/enqueue, validated against the spec plus the rules its prose states."""

    def __init__(self, routing_key: str, clock: Clock | None = None) -> None:
        super().__init__(clock)
        self.routing_key = routing_key
        self.validator = _pagerduty_validator()
        self.accepted: list[dict[str, Any]] = []

    def errors_for(self, body: Any) -> list[str]:
        errors = [e.message for e in self.validator.iter_errors(body)]
        if not isinstance(body, dict):
            return errors or ["body is not an object"]
        if body.get("event_action") == "trigger" and "payload" not in body:
            errors.append("trigger without payload")
        if body.get("event_action") != "trigger" and not body.get("dedup_key"):
            errors.append("dedup_key is required unless event_action is trigger")
        summary = body.get("payload", {}).get("summary", "")
        if len(summary) > 1024:
            errors.append(f"summary is {len(summary)} chars (max 1024)")
        if body.get("routing_key") != self.routing_key:
            errors.append("unknown routing_key")
        return errors

    @property
    def events(self) -> list[dict[str, Any]]:
        """Bodies answered 202, in order."""
        return self.accepted

    async def handle(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record(request, self.errors_for)
        scripted = await self._scripted(request, seen)
        if scripted is not None:
            return scripted
        if seen.errors:
            return web.json_response(
                {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": seen.errors,
                },
                status=400,
            )
        self.accepted.append(seen.body)
        return web.json_response(
            {
                "status": "success",
                "message": "Event processed",
                "dedup_key": seen.body.get("dedup_key", ""),
            },
            status=202,
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/enqueue", self.handle)
        return app


BLOCK_TYPES = {"header", "section", "context", "actions", "divider", "image", "rich_text"}


def _text_obj(obj: Any, where: str, limit: int, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return [f"{where}: not a text object"]
    if plain_only and obj["type"] != "plain_text":
        return [f"{where}: must be plain_text"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"{where}: empty text"]
    return [f"{where}: {len(text)} chars > {limit}"] if len(text) > limit else []


def block_kit_errors(message: Any) -> list[str]:
    """Slack's documented message and Block Kit limits."""
    if not isinstance(message, dict):
        return ["message is not an object"]
    errors: list[str] = []
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        errors.append("no text fallback")
    blocks = message.get("blocks", [])
    if len(blocks) > 50:
        errors.append(f"{len(blocks)} blocks > 50")
    ids: set[str] = set()
    for i, block in enumerate(blocks):
        kind = block.get("type")
        where = f"blocks[{i}]"
        if kind not in BLOCK_TYPES:
            errors.append(f"{where}: unknown block type {kind!r}")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if len(block_id) > 255 or block_id in ids:
                errors.append(f"{where}: bad block_id")
            ids.add(block_id)
        if kind == "header":
            errors += _text_obj(block.get("text"), where, 150, plain_only=True)
        elif kind == "section":
            fields = block.get("fields", [])
            if "text" not in block and not fields:
                errors.append(f"{where}: section needs text or fields")
            if "text" in block:
                errors += _text_obj(block["text"], where, 3000)
            if len(fields) > 10:
                errors.append(f"{where}: {len(fields)} fields > 10")
            for j, f in enumerate(fields):
                errors += _text_obj(f, f"{where}.fields[{j}]", 2000)
        elif kind == "context":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= 10:
                errors.append(f"{where}: context needs 1..10 elements")
        elif kind == "actions":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= 25:
                errors.append(f"{where}: actions needs 1..25 elements")
            for j, el in enumerate(elements):
                errors += _text_obj(el.get("text"), f"{where}.elements[{j}]", 75, plain_only=True)
                url = el.get("url", "")
                if url and (len(url) > 3000 or not url.startswith(("http://", "https://"))):
                    errors.append(f"{where}.elements[{j}]: bad url")
    return errors


class FakeSlack(FakeService):
    """An incoming webhook at /services/... and the Web API's chat.postMessage/chat.update."""

    def __init__(self, token: str, webhook_path: str, clock: Clock | None = None) -> None:
        super().__init__(clock)
        self.token = token
        self.webhook_path = webhook_path
        self.messages: dict[str, dict[str, Any]] = {}
        self.thread_replies: list[dict[str, Any]] = []
        self._next_ts = 1

    async def webhook(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record(request, block_kit_errors)
        scripted = await self._scripted(request, seen)
        if scripted is not None:
            return scripted
        if seen.errors:
            return web.Response(status=400, text="invalid_blocks")
        return web.Response(status=200, text="ok")

    async def api(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record(request, block_kit_errors)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            seen.errors.append("bad token")
        scripted = await self._scripted(request, seen)
        if scripted is not None:
            return scripted
        if seen.errors:
            return web.json_response({"ok": False, "error": "invalid_blocks"})
        body = seen.body
        method = request.match_info["method"]
        if method == "chat.update":
            if body.get("ts") not in self.messages:
                return web.json_response({"ok": False, "error": "message_not_found"})
            self.messages[body["ts"]] = body
            return web.json_response({"ok": True, "channel": body["channel"], "ts": body["ts"]})
        ts = f"1700000000.{self._next_ts:06d}"
        self._next_ts += 1
        if body.get("thread_ts"):
            self.thread_replies.append(body)
        else:
            self.messages[ts] = body
        return web.json_response({"ok": True, "channel": body["channel"], "ts": ts})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(self.webhook_path, self.webhook)
        app.router.add_post("/api/{method}", self.api)
        return app


class FakeWebhook(FakeService):
    async def handle(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record(request, lambda body: [])
        scripted = await self._scripted(request, seen)
        return scripted if scripted is not None else web.Response(status=200, text="ok")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        return app


def make_alert(**overrides: Any) -> Any:
    from schemas.models import Alert

    data: dict[str, Any] = {
        "alert_id": "a-1",
        "fingerprint": "fp0001",
        "status": "firing",
        "severity": "critical",
        "detector": "latency_ewma",
        "title": "p99 latency up on llama-70b",
        "summary": "p99 latency 2.4 s vs 0.9 s expected",
        "labels": {"model": "llama-70b", "gateway": "gw-eu-1", "host": "node-7"},
        "observed": 2.4,
        "expected": 0.9,
        "bounds": {"lower": 0.5, "upper": 1.3},
        "score": 0.97,
        "starts_at": "2024-05-01T12:00:00Z",
        "explanation": "EWMA z-score 6.1 over 5 min",
        "links": {
            "runbook": "https://runbooks.example/latency",
            "dashboard": "https://grafana.example/d/llm",
        },
    }
    data.update(overrides)
    return Alert.model_validate(data)


def note(
    *alerts: Any,
    receiver: str = "r",
    group_key: str | None = None,
    reason: str | None = None,
    acknowledged: bool = False,
    **extra: Any,
) -> Any:
    """A group notification of ``alerts``; a group of one is keyed by its fingerprint, so
    PagerDuty's dedup_key reads as the alert's."""
    from schemas.notification import GroupAlert, Notification

    items = [
        GroupAlert(
            alert=a,
            labels={
                "alertname": a.title,
                "detector": a.detector,
                **a.labels,
                "severity": str(a.severity),
            },
            severity=a.severity,
            acked_by="someone" if acknowledged else "",
        )
        for a in alerts
    ]
    firing = any(a.status == "firing" for a in alerts)
    return Notification(
        receiver=receiver,
        group_key=group_key or alerts[0].fingerprint,
        group_labels=extra.pop("group_labels", {}),
        reason=reason or ("initial" if firing else "resolved"),
        alerts=items,
        acknowledged=acknowledged and firing,
        **extra,
    )


def resolved(alert: Any) -> Any:
    data = alert.model_dump()
    data.update(status="resolved", ends_at=alert.starts_at.replace(hour=13))
    return type(alert).model_validate(data)


class SteppedClock:
    """Time moves only when the test calls ``advance``; sleepers wait for it.

    For outages measured in simulated minutes: a lane backing off sleeps here
    until the test moves time past its wake-up, while everything else runs.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    @property
    def sleepers(self) -> int:
        return sum(1 for _, f in self._waiters if not f.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self.t + seconds, future))
        await future

    def advance(self, seconds: float) -> None:
        self.t += seconds
        keep = []
        for wake, future in self._waiters:
            if wake <= self.t:
                if not future.done():
                    future.set_result(None)
            elif not future.done():
                keep.append((wake, future))
        self._waiters = keep
