"""The CLI tells the truth: every default in --help, bad arguments in plain words."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.cli import build_parser, main

_SWITCHES = (
    argparse._StoreTrueAction,
    argparse._StoreFalseAction,
    argparse._StoreConstAction,
    argparse._CountAction,
    argparse._HelpAction,
    argparse._VersionAction,
)


def _parsers(
    parser: argparse.ArgumentParser, name: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from _parsers(child, f"{name} {sub}")


def _options() -> list[tuple[str, argparse.ArgumentParser, argparse.Action]]:
    out = []
    for name, parser in _parsers(build_parser(), "llmwatch"):
        for action in parser._actions:
            if action.option_strings and not isinstance(action, _SWITCHES) and not action.required:
                out.append((name, parser, action))
    return out


def test_every_option_of_every_command_shows_its_default() -> None:
    missing = []
    for name, parser, action in _options():
        lines = parser.format_help().splitlines()
        # The option's help runs from its line to the next option's line.
        start = next(
            i for i, line in enumerate(lines) if line.lstrip().startswith(action.option_strings[0])
        )
        block = [lines[start]]
        for line in lines[start + 1 :]:
            if line.startswith("  -") or not line.startswith(" " * 6):
                break
            block.append(line)
        if "default" not in " ".join(block):
            missing.append(f"{name} {action.option_strings[0]}")
    assert not missing, f"options whose --help hides the default: {missing}"
    assert len(_options()) > 40  # the walk found the subcommands


def test_duration_defaults_are_shown_as_durations(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "e.g. 90s, 10m, 2h (default: 10m)" in text
    assert "(default: 200.0)" in text  # --rate
    with pytest.raises(SystemExit):
        main(["silence", "add", "--help"])
    assert "(default: 1h)" in capsys.readouterr().out


def test_simulate_names_bad_flags_without_pydantic_links(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["simulate", "--out", str(tmp_path), "--hosts", "0", "--rate", "2e7"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--hosts: Input should be greater than or equal to 1" in err
    assert "--rate: Input should be less than or equal to 1000000" in err
    assert "pydantic" not in err and "http" not in err and "input_value" not in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_simulate_names_a_bad_incidents_file_and_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "inc.json"
    bad.write_text('[{"kind": "nope", "start_offset_s": "1h30m", "duration_s": "5m"}]')
    rc = main(["simulate", "--out", str(tmp_path / "o"), "--incidents", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and str(bad) in err
    assert "0.kind: Input should be" in err and "0.target: Field required" in err
    assert "start_offset_s" not in err  # "1h30m" is a good duration
    assert "pydantic" not in err and "http" not in err
    bad.write_text("{")
    assert main(["simulate", "--out", str(tmp_path / "o"), "--incidents", str(bad)]) == 2
    assert f"--incidents {bad}: Expecting property name" in capsys.readouterr().err
