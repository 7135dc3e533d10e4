"""Label matchers, in Alertmanager's syntax, with a linear-time regex engine.

``name="value"``, ``name!="value"``, ``name=~"regex"``, ``name!~"regex"``; a list is
``{a="1", b=~"x|y"}`` (braces optional). Values are double-quoted with ``\\"``, ``\\\\``
and ``\\n`` escapes, as in Alertmanager; an unquoted value runs to the next comma or
brace (Alertmanager's classic parser accepts that too). Regexes are anchored at both
ends, so ``detector=~"latency"`` does not match ``latency_p99``. A missing label reads
as ``""``, so ``host!="h1"`` matches an alert with no host.

Regexes run on RE2 (``google-re2``), which never backtracks: a silence such as
``host=~"(a+)+$"`` costs time linear in the label's length instead of doubling with
every character on the notifier's event loop. RE2 refuses what it cannot do in linear
time (backreferences, lookaround), and that refusal is a 400 naming the matcher.

A matcher serialises back to ``name op "value"``, with the same escapes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any, Literal

import re2
from pydantic import BaseModel, ConfigDict, model_serializer, model_validator

Op = Literal["=", "!=", "=~", "!~"]
ENGINE = "re2"
MAX_VALUE_CHARS = 4096  # bounds a regex's compiled size (RE2 also caps its memory)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:]*")
_OPS = ("=~", "!~", "!=", "=")  # longest first
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}


def _re2_options() -> Any:
    opts = re2.Options()
    opts.log_errors = False  # a bad regex is our 400, not a line on stderr
    opts.max_mem = 8 << 20
    return opts


_OPTIONS = _re2_options()


def compile_regex(value: str) -> Any:
    """An RE2 pattern that must match the whole value (Alertmanager's anchoring)."""
    if len(value) > MAX_VALUE_CHARS:
        raise ValueError(f"regex is {len(value)} chars (at most {MAX_VALUE_CHARS})")
    try:
        return re2.compile(f"^(?:{value})$", _OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ValueError(f"bad regular expression {value!r}: {detail}") from None


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class _Reader:
    """A cursor over matcher text; every error names the position."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def fail(self, what: str) -> ValueError:
        return ValueError(f"not a label matcher: {self.text!r} ({what} at char {self.at})")

    def skip_space(self) -> None:
        while self.at < len(self.text) and self.text[self.at].isspace():
            self.at += 1

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def name(self) -> str:
        self.skip_space()
        if self.peek() == '"':
            return self.quoted()
        m = _NAME.match(self.text, self.at)
        if m is None:
            raise self.fail("expected a label name")
        self.at = m.end()
        return m.group(0)

    def op(self) -> Op:
        self.skip_space()
        for op in _OPS:
            if self.text.startswith(op, self.at):
                self.at += len(op)
                return op  # type: ignore[return-value]
        raise self.fail("expected one of = != =~ !~")

    def quoted(self) -> str:
        self.at += 1  # the opening quote
        out: list[str] = []
        while self.at < len(self.text):
            ch = self.text[self.at]
            self.at += 1
            if ch == '"':
                return "".join(out)
            if ch == "\\":
                nxt = self.peek()
                if nxt not in _ESCAPES:
                    # Regex escapes such as \d pass through as written.
                    out.append("\\")
                    continue
                out.append(_ESCAPES[nxt])
                self.at += 1
            else:
                out.append(ch)
        raise self.fail("unterminated quoted value")

    def value(self) -> str:
        self.skip_space()
        if self.peek() == '"':
            return self.quoted()
        start = self.at
        while self.at < len(self.text) and self.text[self.at] not in ",}":
            self.at += 1
        raw = self.text[start : self.at].strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == "'":
            raw = raw[1:-1]  # single quotes, as the older llmwatch syntax allowed
        return raw


def _parse_one(reader: _Reader) -> dict[str, str]:
    name = reader.name()
    op = reader.op()
    return {"name": name, "op": op, "value": reader.value()}


def _parse_text(text: str) -> list[dict[str, str]]:
    reader = _Reader(text)
    reader.skip_space()
    braced = reader.peek() == "{"
    if braced:
        reader.at += 1
    found: list[dict[str, str]] = []
    while True:
        reader.skip_space()
        if braced and reader.peek() == "}":
            reader.at += 1
            break
        if not braced and reader.at >= len(text):
            break
        found.append(_parse_one(reader))
        reader.skip_space()
        if reader.peek() == ",":
            reader.at += 1
        elif braced and reader.peek() != "}":
            raise reader.fail("expected , or }")
        elif not braced and reader.at < len(text):
            raise reader.fail("expected ,")
    reader.skip_space()
    if reader.at < len(text):
        raise reader.fail("unexpected text after the matchers")
    return found


def _from_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """``{name, op, value}``, the older ``{label, ...}``, or Alertmanager's API form
    ``{name, value, isRegex, isEqual}``."""
    if "isRegex" in data or "isEqual" in data:
        regex, equal = bool(data.get("isRegex")), bool(data.get("isEqual", True))
        op = ("=~" if equal else "!~") if regex else ("=" if equal else "!=")
        return {"name": data.get("name"), "op": op, "value": data.get("value", "")}
    out = dict(data)
    if "label" in out and "name" not in out:
        out["name"] = out.pop("label")
    return out


class Matcher(BaseModel):
    """One label matcher; written in config as ``'severity=~"critical|error"'`` or a dict."""

    model_config = ConfigDict(frozen=True, ignored_types=(cached_property,))

    name: str
    op: Op = "="
    value: str = ""

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, str):
            found = _parse_text(data)
            if len(found) != 1:
                raise ValueError(f'not a label matcher: {data!r} (want one, e.g. host="h1")')
            return found[0]
        if isinstance(data, Mapping):
            return _from_mapping(data)
        return data

    @model_validator(mode="after")
    def _check(self) -> Matcher:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"not a label name: {self.name!r}")
        if self.op in ("=~", "!~"):
            compile_regex(self.value)
        return self

    @model_serializer
    def _to_string(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{quote(self.value)}"

    @property
    def is_regex(self) -> bool:
        return self.op in ("=~", "!~")

    @property
    def is_equal(self) -> bool:
        return self.op in ("=", "=~")

    @cached_property
    def _regex(self) -> Any:
        return compile_regex(self.value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = self._regex.match(actual) is not None
        return found if self.op == "=~" else not found


def parse_matchers(items: str | Iterable[str | Matcher | Mapping[str, Any]]) -> tuple[Matcher, ...]:
    """Matchers from ``'{a="1",b=~"x"}'``, or from a list of matcher strings/dicts."""
    if isinstance(items, str):
        return tuple(Matcher.model_validate(d) for d in _parse_text(items))
    out: list[Matcher] = []
    for item in items:
        if isinstance(item, Matcher):
            out.append(item)
        elif isinstance(item, str) and item.strip().startswith("{"):
            out.extend(Matcher.model_validate(d) for d in _parse_text(item))
        else:
            out.append(Matcher.model_validate(item))
    return tuple(out)


def match_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def format_matchers(matchers: Iterable[Matcher]) -> str:
    return "{" + ", ".join(str(m) for m in matchers) + "}"
