"""The one duration parser: what it reads, what it refuses, and that it spells back."""

from __future__ import annotations

import argparse
from typing import Annotated

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from schemas.durations import AS_DURATION, Duration, duration_arg, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("90s", 90.0),
        ("90", 90.0),
        ("1.5", 1.5),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("2d", 172_800.0),
        ("1.5h", 5400.0),
        ("1w2d", 777_600.0),
        ("1m30s250ms", 90.25),
        (" 2H ", 7200.0),
        ("0s", 0.0),
    ],
)
def test_reads_what_people_write(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "abc", "1x", "-5s", "30m1h", "1h1h", "nan", "inf", "1e3s", "h", "1h30"]
)
def test_refuses_what_it_would_have_to_guess(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_numbers_are_seconds_and_bools_are_refused() -> None:
    assert parse_duration(90) == 90.0
    assert parse_duration(0.25) == 0.25
    for bad in (True, None, [1], float("nan"), -1.0):
        with pytest.raises(ValueError):
            parse_duration(bad)


@given(st.integers(min_value=0, max_value=10**10))
def test_format_reads_back_exactly(millis: int) -> None:
    seconds = millis / 1000
    text = format_duration(seconds)
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-9)


def test_format_is_the_short_spelling() -> None:
    assert [format_duration(s) for s in (5400.0, 600.0, 0.25, 86400.0, 0.0, 1e-4)] == [
        "1h30m",
        "10m",
        "250ms",
        "1d",
        "0s",
        "0.0001s",
    ]


def test_cli_type_wants_a_positive_duration() -> None:
    assert duration_arg("1h30m") == 5400.0
    for bad in ("0s", "soon"):
        with pytest.raises(argparse.ArgumentTypeError):
            duration_arg(bad)


class _Model(BaseModel):
    wait_s: Duration = Field(30.0, gt=0, le=3600)
    hold_s: Annotated[float, Field(ge=0), AS_DURATION] | None = None


def test_a_model_field_takes_strings_keeps_its_limits_and_says_duration() -> None:
    assert _Model(wait_s="1m30s", hold_s="2d").model_dump() == {"wait_s": 90.0, "hold_s": 172_800.0}
    with pytest.raises(ValidationError, match="less than or equal to 3600"):
        _Model(wait_s="1h30m")
    with pytest.raises(ValidationError, match="not a duration"):
        _Model(wait_s="1 hour")
    schema = _Model.model_json_schema()["properties"]
    assert schema["wait_s"]["format"] == "duration"
    assert schema["wait_s"]["exclusiveMinimum"] == 0 and schema["wait_s"]["maximum"] == 3600
    assert schema["hold_s"]["anyOf"][0] == {"format": "duration", "minimum": 0, "type": "number"}
