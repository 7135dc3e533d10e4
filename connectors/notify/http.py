"""One JSON POST with a timeout, turned into a ``DeliveryResult``; never raises for I/O."""

from __future__ import annotations

import logging

import aiohttp

from schemas.notification import Notification

from .base import Clock, DeliveryResult, ResultFactory

log = logging.getLogger("llmwatch.notify")


class JsonPoster:
    """Owns one aiohttp session; ``trust_env`` stays off so no proxy env leaks in."""

    def __init__(self, results: ResultFactory, clock: Clock, timeout_s: float) -> None:
        self._results = results
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def post(
        self, note: Notification, url: str, body: bytes, headers: dict[str, str]
    ) -> DeliveryResult:
        all_headers = {"Content-Type": "application/json", **headers}
        try:
            async with self._get_session().post(url, data=body, headers=all_headers) as resp:
                text = await resp.text(errors="replace")
                return self._results.from_http(
                    note, resp.status, resp.headers, text, self._clock.now()
                )
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            result = self._results.from_exception(note, exc)
            log.warning("%s: request failed: %s", self._results.receiver, result.detail)
            return result

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
