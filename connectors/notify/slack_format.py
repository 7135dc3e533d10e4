"""Group notification -> Slack message (Block Kit + ``text`` fallback), every event string escaped.

Slack parses ``&``, ``<`` and ``>`` as control characters (``<!channel>``,
``<http://x|label>``), so event data always has them replaced by entities.
Mentions typed as ``@here``/``@channel``/``@everyone`` and mrkdwn markers
(``*_~``` and backticks) are broken with a zero-width space so data can
neither ping a channel nor restyle the message; bidi controls and zero-width
characters that came with the data are removed first (they allow spoofing). URLs only
ever go into button ``url`` fields (never into mrkdwn), and only http(s) ones, so a
label can't disguise where a link goes.
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

from schemas.models import Severity
from schemas.notification import GroupAlert, Notification

from .text import clean, clip, console_link, safe_url

ZWSP = "\u200b"
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
TEXT_LIMIT = 3000
SHOWN_ALERTS = 10  # listed in the message; the rest are counted

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
    text = clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MENTION.sub("@" + ZWSP, text)


def escape_mrkdwn(text: str) -> str:
    """``escape_text`` plus neutralised formatting markers, for data inside mrkdwn."""
    return _MRKDWN_MARK.sub(ZWSP + r"\1", escape_text(text))


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"


def _where(labels: dict[str, str]) -> str:
    pairs = [f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity")]
    return ", ".join(pairs) or "n/a"


def _line(item: GroupAlert) -> str:
    a = item.alert
    mark = "•" if item.firing else "✓"
    text = f"{a.title}" + (f" — {a.summary}" if a.summary else "")
    if item.acked_by:
        text += f" (acknowledged by {item.acked_by})"
    return f"{mark} {escape_mrkdwn(clip(clean(text), 300))}"


def _listing(note: Notification) -> list[str]:
    """Up to SHOWN_ALERTS lines that fit one section, then how many were left out."""
    lines: list[str] = []
    used = 40  # room for the "and N more" line
    for item in note.alerts[:SHOWN_ALERTS]:
        line = _line(item)
        if used + len(line) + 1 > SECTION_LIMIT:
            break
        lines.append(line)
        used += len(line) + 1
    more = len(note.alerts) - len(lines) + note.truncated_alerts
    if more > 0:
        lines.append(f"… and {more} more")
    return lines


def _title(note: Notification) -> str:
    common = note.common_labels()
    name = common.get("alertname") or note.group_labels.get("alertname")
    if name:
        return name
    shown = ", ".join(f"{k}={v}" for k, v in note.group_labels.items())
    return shown or (note.alerts[0].alert.title if note.alerts else "alerts")


class SlackMessageBuilder:
    def __init__(self, source: str = "llmwatch") -> None:
        self._source = source

    def headline(self, note: Notification) -> str:
        phase = note.phase
        emoji = ":white_check_mark:" if phase == "resolved" else _EMOJI[note.severity]
        count = f":{len(note.firing)}" if phase != "resolved" else ""
        return f"{emoji} {_PHASE_WORD[phase]}{count}: {_title(note)}"

    def text(self, note: Notification) -> str:
        """The notification/fallback text: shown by clients that can't render blocks."""
        count = "" if note.phase == "resolved" else f":{len(note.firing)}"
        line = f"[{_PHASE_WORD[note.phase]}{count}] {note.severity!s}: {_title(note)}"
        lead = (note.firing or note.alerts)[0].alert if note.alerts else None
        if lead is not None and lead.summary:
            line += f" - {lead.summary}"
        return clip(escape_mrkdwn(line), TEXT_LIMIT)

    def update_text(self, note: Notification) -> str:
        """A thread reply: what changed since the message was posted or last updated."""
        parts = [f"*{_PHASE_WORD[note.phase]}* ({note.reason})"]
        if note.firing:
            parts.append(f"{len(note.firing)} firing")
        if note.resolved:
            parts.append(f"{len(note.resolved)} resolved")
        lines = [" · ".join(parts)] + [_line(a) for a in note.alerts[:SHOWN_ALERTS]]
        return clip("\n".join(lines), TEXT_LIMIT)

    def blocks(self, note: Notification) -> list[dict[str, Any]]:
        built: list[Block] = [
            HeaderBlock(
                text=PlainTextObject(
                    text=clip(escape_text(self.headline(note)), HEADER_LIMIT), emoji=True
                )
            )
        ]
        lines = _listing(note)
        if lines:
            built.append(
                SectionBlock(text=MarkdownTextObject(text=clip("\n".join(lines), SECTION_LIMIT)))
            )
        built.append(SectionBlock(fields=self._fields(note)))
        lead = (note.firing or note.alerts)[0].alert if note.alerts else None
        if lead is not None and lead.explanation and len(note.alerts) == 1:
            built.append(
                SectionBlock(
                    text=PlainTextObject(text=clip(escape_text(lead.explanation), SECTION_LIMIT))
                )
            )
        buttons = [
            ButtonElement(text=label, url=url, action_id=f"llmwatch_{label.lower()}")
            for label, url in (
                ("Runbook", safe_url(lead.links.runbook if lead else None)),
                ("Dashboard", safe_url(lead.links.dashboard if lead else None)),
                ("Console", console_link(note.external_url, lead.fingerprint) if lead else None),
            )
            if url
        ]
        if buttons:
            built.append(ActionsBlock(elements=buttons))
        context = f"{escape_mrkdwn(self._source)} · group {escape_mrkdwn(clean(note.group_key))}"
        built.append(ContextBlock(elements=[MarkdownTextObject(text=clip(context, FIELD_LIMIT))]))
        return [block.to_dict() for block in built]

    @staticmethod
    def _fields(note: Notification) -> list[MarkdownTextObject]:
        starts = [a.alert.starts_at for a in note.alerts]
        since = min(starts) if starts else None
        fields = [
            ("Severity", escape_mrkdwn(str(note.severity))),
            ("Firing", str(len(note.firing))),
            ("Resolved", str(len(note.resolved))),
            ("Where", escape_mrkdwn(_where(note.common_labels()))),
        ]
        if since is not None:
            ts, iso = int(since.timestamp()), since.strftime("%Y-%m-%d %H:%M:%SZ")
            # Slack renders the date in the reader's timezone; the ISO text is the fallback.
            fields.append(("Since", f"<!date^{ts}^{{date_short_pretty}} {{time}}|{iso}>"))
        if len(note.alerts) == 1:
            a = note.alerts[0].alert
            expected = _number(a.expected)
            if a.bounds.lower is not None or a.bounds.upper is not None:
                expected += f" (bounds {_number(a.bounds.lower)} .. {_number(a.bounds.upper)})"
            fields += [("Observed", _number(a.observed)), ("Expected", expected)]
            fields.append(("Score", f"{a.score:.2f}"))
        return [
            MarkdownTextObject(text=clip(f"*{label}*\n{value}", FIELD_LIMIT))
            for label, value in fields
        ]
