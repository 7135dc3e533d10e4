"""Event data made safe for a human's screen: no spoofing characters, no odd links.

Labels and explanations come from the event stream, so anyone who can publish an
event can put text in front of the on-call engineer. Bidi controls (U+202A..E,
U+2066..9, U+200E/F, U+061C) reorder what is shown, so ``gpu-01<RLO>10-upg`` reads
like another host; zero-width characters (U+200B..D, U+2060, U+FEFF, U+180E) make
two different strings look the same. Both are removed from every text that goes
to Slack or PagerDuty. Links are plain http(s) URLs or nothing: a ``javascript:``
or ``data:`` link never reaches a button or a PagerDuty link.
"""

from __future__ import annotations

import re

URL_LIMIT = 3000
_INVISIBLE = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\u180e\ufeff]")
_URL = re.compile(r"https?://[^\s<>|\"'`\\]+", re.IGNORECASE)


def clean(text: str) -> str:
    """``text`` without bidi controls and zero-width characters."""
    return _INVISIBLE.sub("", text)


def safe_url(url: str | None) -> str | None:
    """Only plain http(s) URLs without whitespace, quotes or Slack control characters."""
    if not url or len(url) > URL_LIMIT or _INVISIBLE.search(url):
        return None
    return url if _URL.fullmatch(url) else None


def console_link(external_url: str | None, fingerprint: str) -> str | None:
    """The alert's place in the notifier's web console (``stream/notify/console.py``
    scrolls to ``#alert-<fingerprint>``), or None without an http(s) external URL."""
    if not external_url:
        return None
    return safe_url(f"{external_url.rstrip('/')}/#alert-{fingerprint}")


def clip(text: str, limit: int) -> str:
    """Cut to ``limit`` code points with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
