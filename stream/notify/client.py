"""A tiny client for the notifier API, used by ``llmwatch silence`` and ``llmwatch ack``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from pydantic import SecretStr


class APIError(ValueError):
    """The notifier refused the request or could not be reached; the message says why."""


class NotifierClient:
    def __init__(self, url: str, token: SecretStr | None, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout_s

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._token is not None and self._token.get_secret_value():
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise APIError(f"{method} {path}: HTTP {exc.code}: {_message(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise APIError(f"cannot reach the notifier at {self.url}: {reason}") from None


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error", exc.reason))
    except (ValueError, AttributeError):
        return str(exc.reason)


def add_client_args(p: Any) -> None:
    p.add_argument(
        "--url",
        default=None,
        help="notifier API (default http://127.0.0.1:$LLMWATCH_NOTIFY_WEB_PORT)",
    )


def client_for(url: str | None) -> NotifierClient:
    """Token from LLMWATCH_API_TOKEN (through Settings, the one reader of the environment)."""
    from stream.settings import load_settings

    settings = load_settings()
    return NotifierClient(url or f"http://127.0.0.1:{settings.notify_web_port}", settings.api_token)
