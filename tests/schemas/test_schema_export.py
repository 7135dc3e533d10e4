"""The committed JSON Schemas match the models, and the CLI says so (or says what drifted)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from schemas.export import JSON_DIR, check_json_schemas, export_json_schemas
from schemas.models import WIRE_MODELS, InferenceEvent, dump_json
from stream.cli import main


def test_committed_schemas_have_not_drifted() -> None:
    drifted = check_json_schemas(JSON_DIR)
    assert drifted == [], f"run `llmwatch schema export`: {drifted}"
    assert sorted(p.name for p in JSON_DIR.glob("*.schema.json")) == sorted(
        f"{kind}.schema.json" for kind in WIRE_MODELS
    )


def test_export_writes_stable_sorted_files(tmp_path: Path) -> None:
    paths = export_json_schemas(tmp_path)
    assert {p.name for p in paths} == {f"{k}.schema.json" for k in WIRE_MODELS}
    for path in paths:
        text = path.read_text()
        assert text.endswith("}\n")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert check_json_schemas(tmp_path) == []
    # Exporting twice gives the same bytes.
    before = {p: p.read_bytes() for p in paths}
    export_json_schemas(tmp_path)
    assert {p: p.read_bytes() for p in paths} == before


def test_exported_schema_accepts_what_the_model_writes() -> None:
    schema = json.loads((JSON_DIR / "inference.schema.json").read_text())
    event = InferenceEvent(
        ts=datetime(2024, 6, 1, tzinfo=UTC),
        gateway="g",
        model="m",
        model_version="v",
        request_id="r",
        status="ok",
        latency_ms=10,
    )
    jsonschema.validate(json.loads(dump_json(event)), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**json.loads(dump_json(event)), "latency_ms": -1}, schema)


def test_cli_check_passes_then_fails_on_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema", "export", "--out", str(tmp_path)]) == 0
    assert main(["schema", "export", "--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "gpu.schema.json").write_text("{}\n")
    (tmp_path / "metric.schema.json").unlink()
    capsys.readouterr()
    assert main(["schema", "export", "--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "gpu.schema.json" in err and "metric.schema.json" in err
    assert "inference.schema.json" not in err


def test_cli_check_on_committed_dir() -> None:
    assert main(["schema", "export", "--check"]) == 0
