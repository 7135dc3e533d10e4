"""Alert -> Slack message (Block Kit + ``text`` fallback), with every event string escaped.

Slack parses ``&``, ``<`` and ``>`` as control characters (``<!channel>``,
``<http://x|label>``), so event data always has them replaced by entities.
Mentions typed as ``@here``/``@channel``/``@everyone`` and mrkdwn markers
(``*_~``` and backticks) are broken with a zero-width space so data can
neither ping a channel nor restyle the message. URLs only ever go into button
``url`` fields (never into mrkdwn), so a label can't disguise where a link goes.
"""

from __future__ import annotations

import re
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from schemas.models import Alert, Severity

from .base import phase_of

ZWSP = "\u200b"
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
URL_LIMIT = 3000
TEXT_LIMIT = 3000

_MENTION = re.compile(r"@(?=(?:here|channel|everyone)\b)", re.IGNORECASE)
_MRKDWN_MARK = re.compile(r"([*_~`])")
_EMOJI = {
    Severity.CRITICAL: ":red_circle:",
    Severity.ERROR: ":large_orange_circle:",
    Severity.WARNING: ":large_yellow_circle:",
    Severity.INFO: ":large_blue_circle:",
}
_PHASE_WORD = {"firing": "FIRING", "acknowledged": "ACKNOWLEDGED", "resolved": "RESOLVED"}


def escape_text(text: str) -> str:
    """Slack's three entities, plus broken-up @-mentions: safe in plain_text and mrkdwn."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MENTION.sub("@" + ZWSP, text)


def escape_mrkdwn(text: str) -> str:
    """``escape_text`` plus neutralised formatting markers, for data inside mrkdwn."""
    return _MRKDWN_MARK.sub(ZWSP + r"\1", escape_text(text))


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_url(url: str | None) -> str | None:
    """Only plain http(s) URLs without whitespace or Slack control characters."""
    if not url or len(url) > URL_LIMIT:
        return None
    if not re.fullmatch(r"https?://[^\s<>|\"]+", url):
        return None
    return url


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"


def _where(alert: Alert) -> str:
    pairs = [f"{k}={v}" for k, v in sorted(alert.labels.items())]
    return ", ".join(pairs) or "n/a"


class SlackMessageBuilder:
    def __init__(self, source: str = "llmwatch") -> None:
        self._source = source

    def headline(self, alert: Alert) -> str:
        phase = phase_of(alert)
        emoji = ":white_check_mark:" if phase == "resolved" else _EMOJI[alert.severity]
        return f"{emoji} {_PHASE_WORD[phase]}: {alert.title}"

    def text(self, alert: Alert) -> str:
        """The notification/fallback text: shown by clients that can't render blocks."""
        phase = _PHASE_WORD[phase_of(alert)]
        line = f"[{phase}] {alert.severity!s}: {alert.title}"
        if alert.summary:
            line += f" - {alert.summary}"
        return clip(escape_mrkdwn(line), TEXT_LIMIT)

    def blocks(self, alert: Alert) -> list[dict[str, Any]]:
        built: list[Block] = [
            HeaderBlock(
                text=PlainTextObject(
                    text=clip(escape_text(self.headline(alert)), HEADER_LIMIT), emoji=True
                )
            )
        ]
        if alert.summary:
            built.append(
                SectionBlock(
                    text=PlainTextObject(text=clip(escape_text(alert.summary), SECTION_LIMIT))
                )
            )
        built.append(SectionBlock(fields=self._fields(alert)))
        if alert.explanation:
            built.append(
                SectionBlock(
                    text=PlainTextObject(text=clip(escape_text(alert.explanation), SECTION_LIMIT))
                )
            )
        buttons = [
            ButtonElement(text=label, url=url, action_id=f"llmwatch_{label.lower()}")
            for label, url in (
                ("Runbook", safe_url(alert.links.runbook)),
                ("Dashboard", safe_url(alert.links.dashboard)),
            )
            if url
        ]
        if buttons:
            built.append(ActionsBlock(elements=buttons))
        context = f"{escape_mrkdwn(self._source)} · fingerprint {escape_mrkdwn(alert.fingerprint)}"
        built.append(ContextBlock(elements=[MarkdownTextObject(text=clip(context, FIELD_LIMIT))]))
        return [block.to_dict() for block in built]

    @staticmethod
    def _fields(alert: Alert) -> list[MarkdownTextObject]:
        since = int(alert.starts_at.timestamp())
        iso = alert.starts_at.strftime("%Y-%m-%d %H:%M:%SZ")
        expected = _number(alert.expected)
        if alert.bounds.lower is not None or alert.bounds.upper is not None:
            expected += f" (bounds {_number(alert.bounds.lower)} .. {_number(alert.bounds.upper)})"
        fields = [
            ("Severity", escape_mrkdwn(str(alert.severity))),
            ("Detector", escape_mrkdwn(alert.detector)),
            ("Observed", _number(alert.observed)),
            ("Expected", expected),
            ("Where", escape_mrkdwn(_where(alert))),
            # Slack renders the date in the reader's timezone; the ISO text is the fallback.
            ("Since", f"<!date^{since}^{{date_short_pretty}} {{time}}|{iso}>"),
            ("Score", f"{alert.score:.2f}"),
        ]
        if alert.ends_at is not None:
            fields.append(("Resolved at", alert.ends_at.strftime("%Y-%m-%d %H:%M:%SZ")))
        return [
            MarkdownTextObject(text=clip(f"*{label}*\n{value}", FIELD_LIMIT))
            for label, value in fields
        ]
