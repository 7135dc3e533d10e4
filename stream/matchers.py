"""Label matchers in Alertmanager's syntax: ``name="value"``, ``!=``, ``=~``, ``!~``.

Regular expressions are anchored at both ends, as in Alertmanager, so
``detector=~"latency"`` does not match ``latency_p99``. A matcher serialises back
to the same string it was parsed from, which keeps config files and snapshots
readable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_serializer, model_validator

Op = Literal["=", "!=", "=~", "!~"]
_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    return raw


class Matcher(BaseModel):
    model_config = ConfigDict(frozen=True, ignored_types=(cached_property,))

    name: str
    op: Op = "="
    value: str = ""

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if isinstance(data, str):
            m = _MATCHER.match(data)
            if m is None:
                raise ValueError(f'not a label matcher: {data!r} (want e.g. host="h1")')
            return {"name": m.group(1), "op": m.group(2), "value": _unquote(m.group(3))}
        return data

    @model_validator(mode="after")
    def _valid_regex(self) -> Matcher:
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"bad regular expression {self.value!r}: {exc}") from exc
        return self

    @model_serializer
    def _to_string(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(f"(?:{self.value})\\Z")

    def matches(self, labels: Mapping[str, str]) -> bool:
        # A missing label reads as "" (Alertmanager's rule), so host!="h1" matches no host.
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = self._regex.match(actual) is not None
        return found if self.op == "=~" else not found


def parse_matchers(items: list[str | Matcher] | tuple[str | Matcher, ...]) -> tuple[Matcher, ...]:
    return tuple(m if isinstance(m, Matcher) else Matcher.model_validate(m) for m in items)


def match_all(matchers: tuple[Matcher, ...] | list[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
