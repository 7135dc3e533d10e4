"""JSON Schema export: the published form of the wire models, generated, never hand-written."""

from __future__ import annotations

import json
from pathlib import Path

from .models import WIRE_MODELS

JSON_DIR = Path(__file__).parent / "json"


def render_json_schemas() -> dict[str, str]:
    """File name -> file text for every wire model (sorted keys, indent 2, newline)."""
    out: dict[str, str] = {}
    for kind, model in sorted(WIRE_MODELS.items()):
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"llmwatch/{kind}.schema.json"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[f"{kind}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def export_json_schemas(out_dir: Path) -> list[Path]:
    """Write ``<kind>.schema.json`` for every wire model; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, text in render_json_schemas().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check_json_schemas(directory: Path) -> list[str]:
    """Names of schema files that are missing or differ from what the models export."""
    drifted: list[str] = []
    for name, text in render_json_schemas().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            drifted.append(name)
    return drifted
