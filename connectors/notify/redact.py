"""Keep secrets (routing keys, webhook URLs, tokens) out of every string we emit.

A receiver's secret can surface in surprising places: an aiohttp error quotes the
URL, a Slack error echoes the request, a proxy answers with the path in its body.
So every text that leaves a notifier (log line, result detail, dead letter) goes
through the receiver's ``Redactor`` first.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

from pydantic import SecretStr

MASK = "***"
# Shorter fragments would mask ordinary words; no real secret is this short.
_MIN_FRAGMENT = 6


def _fragments(secret: str) -> list[str]:
    parts = [secret]
    if "://" in secret:
        # A URL's secret is its path and query; errors often quote only those.
        split = urlsplit(secret)
        parts.append(split.path + (f"?{split.query}" if split.query else ""))
        parts.extend(seg for seg in split.path.split("/") if len(seg) >= 12)
        if split.query:
            parts.append(split.query)
            parts.extend(value for _, value in parse_qsl(split.query))
        if split.password:
            parts.append(split.password)
    return [p for p in parts if len(p) >= _MIN_FRAGMENT]


class Redactor:
    """Replaces every known secret (and a URL secret's path) with ``***``."""

    def __init__(self, secrets: Iterable[SecretStr | str | None] = ()) -> None:
        found: set[str] = set()
        for secret in secrets:
            if secret is None:
                continue
            raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
            found.update(_fragments(raw))
        # Longest first so a URL is masked whole before its path is.
        self._fragments = sorted(found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for fragment in self._fragments:
            text = text.replace(fragment, MASK)
        return text

    def exception(self, exc: BaseException) -> str:
        """``Type: message`` of an exception, redacted; never the traceback."""
        message = str(exc) or repr(exc)
        return self(f"{type(exc).__name__}: {message}")
