"""``llmwatch config dump`` writes every key with its default; ``config check`` names problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from pydantic import BaseModel

from stream.cli import main
from stream.config import LlmwatchConfig, load_config, parse_config
from stream.lifecycle_config import IGNORED


def _leaves(schema: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted keys of every scalar/list field the JSON Schema names."""
    out: set[str] = set()
    for name, prop in schema.get("properties", {}).items():
        target = defs[prop["$ref"].rsplit("/", 1)[-1]] if "$ref" in prop else prop
        if target.get("type") == "object" and "properties" in target:
            out |= _leaves(target, defs, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


def _flat(data: Any, prefix: str = "") -> set[str]:
    if isinstance(data, dict) and not prefix.endswith("rules."):
        keys: set[str] = set()
        for k, v in data.items():
            keys |= {f"{prefix}{k}"} | _flat(v, f"{prefix}{k}.")
        return keys
    return set()


def test_dump_writes_every_key_and_reads_back_to_the_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "dump"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert parse_config(data) == LlmwatchConfig()
    schema = LlmwatchConfig.model_json_schema()
    wanted = _leaves(schema, schema.get("$defs", {}))
    assert len(wanted) > 150
    missing = wanted - _flat(data)
    # Settings nothing reads (stream.lifecycle_config.IGNORED) are left out on purpose.
    ignored = {w for w in missing if w.split(".")[:2] in [["lifecycle", n] for n in IGNORED]}
    assert ignored and not missing - ignored, missing


def test_dump_fills_in_a_partial_file_and_writes_where_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    partial = tmp_path / "mine.yaml"
    partial.write_text("lifecycle:\n  defaults:\n    for_s: 1h30m\n")
    out = tmp_path / "conf" / "full.yaml"
    assert main(["config", "dump", "--from", str(partial), "--out", str(out)]) == 0
    full = load_config(out)
    assert full.lifecycle.defaults.for_s == 5400.0
    assert cast(BaseModel, full.detectors) == LlmwatchConfig().detectors
    assert main(["config", "dump", "--out", str(tmp_path / "full.toml")]) == 2
    assert "name it .yaml or .yml" in capsys.readouterr().err


def test_check_names_every_problem_on_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("lifecycle:\n  defaults: {for_s: -1, fire_threshold: 2}\n  ghost: 1\n")
    assert main(["config", "check", str(bad)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"llmwatch config: error: {bad}: 3 problems:"
    assert [line.strip().split(":")[0] for line in lines[1:]] == [
        "lifecycle.defaults.for_s",
        "lifecycle.defaults.fire_threshold",
        "lifecycle.ghost",
    ]
    good = tmp_path / "good.yaml"
    good.write_text("detectors: {latency: {enabled: false}}\n")
    assert main(["config", "check", str(good)]) == 0
