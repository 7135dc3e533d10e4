"""The one label matcher: Alertmanager's syntax, anchored regexes, RE2 (no ReDoS)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stream.alerting import matchers as m
from stream.alerting.matchers import Matcher, format_matchers, parse_matchers

LABELS = {"model": "llama-70b", "env": "", "host": "gpu-01", "note": 'say "hi"\\now'}


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ('model="llama-70b"', True),
        ("model=llama-70b", True),  # unquoted, as Alertmanager's classic parser allows
        ("model='llama-70b'", True),  # single quotes, as older llmwatch configs wrote
        ('model!="llama-70b"', False),
        ('model=~"llama-.*"', True),
        ('model=~"llama"', False),  # anchored at both ends
        ('model=~"70b"', False),
        ('model!~"mistral.*"', True),
        ('env=""', True),
        ('missing=""', True),  # a missing label reads as ""
        ('missing!="x"', True),
        ('host=~"gpu-0[0-9]"', True),
        (r'note="say \"hi\"\\now"', True),  # escapes: \" and \\
        ('model=~"(?i)LLAMA-70B"', True),
    ],
)
def test_one_matcher(text: str, hit: bool) -> None:
    assert Matcher.model_validate(text).matches(LABELS) is hit


def test_lists_with_braces_and_without() -> None:
    found = parse_matchers('{model=~"llama-.*", host!="gpu-02" , env=""}')
    assert [str(x) for x in found] == ['model=~"llama-.*"', 'host!="gpu-02"', 'env=""']
    assert parse_matchers('model="a",host="b"') == parse_matchers(['model="a"', 'host="b"'])
    assert parse_matchers(['{a="1", b="2"}', 'c="3"'])[2].name == "c"
    assert parse_matchers("{}") == ()
    assert format_matchers(found) == '{model=~"llama-.*", host!="gpu-02", env=""}'


def test_a_value_with_commas_and_braces_round_trips() -> None:
    (one,) = parse_matchers(r'{msg="a, b} \"c\"\nd"}')
    assert one.value == 'a, b} "c"\nd'
    assert Matcher.model_validate(str(one)) == one
    assert Matcher.model_validate(one.model_dump()) == one  # serialises to its string


def test_dict_forms_older_and_alertmanager_api() -> None:
    assert Matcher.model_validate({"label": "model", "op": "!=", "value": "x"}).matches(LABELS)
    api = Matcher.model_validate({"name": "model", "value": "llama.*", "isRegex": True})
    assert str(api) == 'model=~"llama.*"'
    neg = Matcher.model_validate(
        {"name": "model", "value": "llama.*", "isRegex": True, "isEqual": False}
    )
    assert neg.op == "!~" and not neg.matches(LABELS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("just words", "expected one of"),
        ('a=~"("', "bad regular expression"),
        (r'a=~"(x)\1"', "bad regular expression"),  # backreference: not linear time
        ('a=~"(?=x)"', "bad regular expression"),  # lookahead: not linear time
        ('a="unterminated', "unterminated"),
        ('{a="1" b="2"}', "expected , or }"),
        ('a="1", ="2"', "expected a label name"),
        ('9a="x"', "expected a label name"),
    ],
)
def test_bad_matchers_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises((ValueError, ValidationError), match=message):
        parse_matchers(text)


def test_the_redos_pattern_runs_on_re2_in_linear_time() -> None:
    """``(a+)+$`` on "aaa...b" doubles per character with backtracking (Python's re takes
    seconds at 25 chars); RE2 never backtracks. The timing itself is in the benchmark
    (benchmarks/matchers_redos.py); here: the engine is RE2 and a 10,000-char label, which
    backtracking could not finish in the age of the universe, evaluates."""
    sil = Matcher.model_validate('host=~"(a+)+$"')
    assert m.ENGINE == "re2" and type(sil._regex).__module__.startswith("re2")
    assert not sil.matches({"host": "a" * 10_000 + "b"})
    assert sil.matches({"host": "a" * 10_000})
    nested = Matcher.model_validate('host=~"((a|aa)+)+(b|c)*x"')
    assert not nested.matches({"host": "a" * 10_000})


def test_an_oversized_regex_is_refused() -> None:
    with pytest.raises(ValidationError, match="at most"):
        Matcher.model_validate({"name": "a", "op": "=~", "value": "x" * (m.MAX_VALUE_CHARS + 1)})
