"""Slack: incoming-webhook mode, and bot-token mode with one message per group.

Bot mode posts a group's first notification, then keeps that one message current
(``chat.update``) as alerts join, are acknowledged and resolve, and says what changed
in the message's thread. The (channel, ts) per group key survives restarts in the
message store, so a restarted notifier edits the message instead of posting again.
Webhook mode cannot edit, so each notification is a message of its own.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from schemas.notification import Notification

from .base import SLACK_RATE, Clock, DeliveryResult, RateLimit, ResultFactory, SystemClock
from .redact import Redactor
from .slack_format import SlackMessageBuilder
from .stores import MemoryMessageStore, MessageStore

log = logging.getLogger("llmwatch.notify")

# slack_sdk logs the webhook URL (the secret) at debug level; its clients get this mute logger.
_MUTE = logging.getLogger("llmwatch.notify.slack_sdk_mute")
_MUTE.propagate = False
_MUTE.addHandler(logging.NullHandler())
_MUTE.setLevel(logging.CRITICAL)

_RETRYABLE_API_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_GONE_MESSAGE_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


class SlackWebhookConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: SecretStr
    timeout_s: float = Field(10.0, gt=0)


class SlackBotConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    token: SecretStr
    channel: str = Field(min_length=1)
    base_url: str = "https://slack.com/api/"
    # What a later notification of a group does: update: edit the group's message;
    # thread: reply under it; both: edit it and say what changed in its thread.
    resolve_mode: Literal["update", "thread", "both"] = "both"
    timeout_s: float = Field(10.0, gt=0)


class _SlackBase:
    def __init__(self, name: str, secret: SecretStr, timeout_s: float, clock: Clock | None) -> None:
        self._name = name
        self._clock = clock or SystemClock()
        self._results = ResultFactory(name, Redactor([secret]))
        self._timeout_s = timeout_s
        self._builder = SlackMessageBuilder()
        self._session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def rate_limit(self) -> RateLimit | None:
        return SLACK_RATE

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _failed(self, note: Notification, exc: Exception) -> DeliveryResult:
        result = self._results.from_exception(note, exc)
        log.warning("%s: request failed: %s", self._name, result.detail)
        return result

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class SlackWebhookNotifier(_SlackBase):
    """Incoming webhook: one message per delivery (webhooks cannot edit a message)."""

    def __init__(self, name: str, config: SlackWebhookConfig, clock: Clock | None = None) -> None:
        super().__init__(name, config.url, config.timeout_s, clock)
        self._config = config

    def message(self, note: Notification) -> dict[str, Any]:
        return {"text": self._builder.text(note), "blocks": self._builder.blocks(note)}

    async def send(self, note: Notification) -> DeliveryResult:
        client = AsyncWebhookClient(
            url=self._config.url.get_secret_value(),
            timeout=math.ceil(self._timeout_s),
            session=self._get_session(),
            logger=_MUTE,
            retry_handlers=[],  # its default retries sleep in wall time; retrying is ours
        )
        msg = self.message(note)
        try:
            async with asyncio.timeout(self._timeout_s):
                resp = await client.send(
                    text=msg["text"], blocks=msg["blocks"], unfurl_links=False, unfurl_media=False
                )
        except Exception as exc:
            return self._failed(note, exc)
        return self._results.from_http(
            note, resp.status_code, resp.headers or {}, resp.body or "", self._clock.now()
        )


class SlackBotNotifier(_SlackBase):
    """Bot token: chat.postMessage on firing; on resolve, chat.update the original (by ts)."""

    def __init__(
        self,
        name: str,
        config: SlackBotConfig,
        store: MessageStore | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, config.token, config.timeout_s, clock)
        self._config = config
        self._store: MessageStore = store if store is not None else MemoryMessageStore()

    def _client(self) -> AsyncWebClient:
        return AsyncWebClient(
            token=self._config.token.get_secret_value(),
            base_url=self._config.base_url,
            timeout=math.ceil(self._timeout_s),
            session=self._get_session(),
            logger=_MUTE,
            retry_handlers=[],  # retrying is ours, with the shared policy
        )

    def _message(self, note: Notification) -> dict[str, Any]:
        return {
            "text": self._builder.text(note),
            "blocks": self._builder.blocks(note),
            "unfurl_links": False,
            "unfurl_media": False,
            "parse": "none",
        }

    def _api_error(self, note: Notification, exc: SlackApiError) -> DeliveryResult:
        resp = exc.response
        data = resp.data if isinstance(resp.data, dict) else {}
        error = str(data.get("error", "unknown_error"))
        headers: Mapping[str, str] = resp.headers or {}
        if resp.status_code != 200:
            return self._results.from_http(
                note, resp.status_code, headers, error, self._clock.now()
            )
        if error in _RETRYABLE_API_ERRORS:
            return self._results.retryable(note, f"Slack API error: {error}", 200)
        return self._results.permanent(note, f"Slack API error: {error}", 200)

    async def _call(
        self, note: Notification, method: str, **kwargs: Any
    ) -> dict[str, Any] | DeliveryResult:
        try:
            async with asyncio.timeout(self._timeout_s):
                resp = await self._client().api_call(method, json=kwargs)
        except SlackApiError as exc:
            return self._api_error(note, exc)
        except Exception as exc:
            return self._failed(note, exc)
        return dict(resp.data) if isinstance(resp.data, dict) else {}

    async def send(self, note: Notification) -> DeliveryResult:
        stored = self._store.get(note.group_key)
        if stored is None:
            return await self._post(note)
        channel, ts = stored
        if self._config.resolve_mode in ("update", "both"):
            result = await self._call(
                note, "chat.update", channel=channel, ts=ts, **self._message(note)
            )
            if isinstance(result, DeliveryResult):
                if result.detail.endswith(tuple(_GONE_MESSAGE_ERRORS)):
                    # The original is gone: say it afresh rather than drop the news.
                    self._store.delete(note.group_key)
                    return await self._post(note)
                return result
        if self._config.resolve_mode in ("thread", "both"):
            reply = await self._call(
                note,
                "chat.postMessage",
                channel=channel,
                thread_ts=ts,
                text=self._builder.update_text(note),
                unfurl_links=False,
                unfurl_media=False,
                parse="none",
            )
            if isinstance(reply, DeliveryResult):
                return reply
        if note.phase == "resolved":
            self._store.delete(note.group_key)
        return self._results.sent(note, 200)

    async def _post(self, note: Notification) -> DeliveryResult:
        result = await self._call(
            note, "chat.postMessage", channel=self._config.channel, **self._message(note)
        )
        if isinstance(result, DeliveryResult):
            return result
        if note.phase != "resolved" and result.get("ts"):
            self._store.put(
                note.group_key,
                str(result.get("channel") or self._config.channel),
                str(result["ts"]),
            )
        return self._results.sent(note, 200)
