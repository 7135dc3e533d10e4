"""Process-wide log redaction for the notifier: the last net under every log line."""

from __future__ import annotations

import logging

from connectors.notify import Redactor


class RedactingFilter(logging.Filter):
    """Renders each record's message and masks every known secret in it."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redact(record.getMessage())
        record.args = None
        if record.exc_info:
            # Tracebacks quote arguments (URLs, tokens); keep only the type and a masked text.
            exc = record.exc_info[1]
            if exc is not None:
                record.msg += f" [{self._redact.exception(exc)}]"
            record.exc_info = None
            record.exc_text = None
        return True


def setup_logging(level: str, redact: Redactor) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    names = {"crit": "CRITICAL", "warn": "WARNING"}
    root.setLevel(names.get(level, level.upper()))
