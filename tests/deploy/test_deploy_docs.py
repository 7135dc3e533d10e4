"""Generated docs are current; every detector has a runbook; deploy/ configs load."""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType

import yaml

from tests.deploy.deploy_support import DEPLOY, DOCS, ROOT


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_docs_are_up_to_date() -> None:
    for name, text in _generator().render().items():
        assert (DOCS / name).read_text(encoding="utf-8") == text, (
            f"docs/{name} is stale: run python docs/generate.py"
        )


def test_configuration_doc_covers_every_detector_and_lifecycle_key() -> None:
    from detectors.config import detector_classes

    text = (DOCS / "configuration.md").read_text()
    for name in detector_classes():
        assert f"`detectors.{name}.enabled`" in text
    assert "`lifecycle.defaults.for_s`" in text


def test_events_doc_covers_every_schema() -> None:
    text = (DOCS / "events.md").read_text()
    for path in (ROOT / "schemas" / "json").glob("*.schema.json"):
        assert f"`{path.name}`" in text


def test_one_runbook_per_detector() -> None:
    from detectors.config import detector_classes

    books = {p.stem for p in (DOCS / "runbooks").glob("*.md")}
    assert set(detector_classes()) <= books
    for name in detector_classes():
        text = (DOCS / "runbooks" / f"{name}.md").read_text()
        assert "**Means:**" in text and "**Check first:**" in text


def test_shipped_llmwatch_configs_load() -> None:
    from stream.config import load_config, parse_config

    load_config(DEPLOY / "compose" / "llmwatch.yaml")
    cm = yaml.safe_load((DEPLOY / "kubernetes" / "configmap.yaml").read_text())
    parse_config(yaml.safe_load(cm["data"]["llmwatch.yaml"]), "configmap")


def test_doc_links_point_at_existing_files() -> None:
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_every_configuration_key_has_a_description() -> None:
    rows = [
        [cell.strip() for cell in line.split(" | ")]
        for line in (DOCS / "configuration.md").read_text().splitlines()
        if line.startswith("| `")
    ]
    assert len(rows) > 150
    empty = [row[0].strip("|` ") for row in rows if not row[4].rstrip("| ").strip()]
    assert not empty, f"keys without a Field(description=...): {empty}"
    assert any(row[1] == "duration" for row in rows)  # durations are named as such


def test_the_partition_key_is_documented_one_way() -> None:
    """schemas.keys keys inference by model alone; no page or docstring says otherwise."""
    from schemas.keys import key_of
    from schemas.models import InferenceEvent

    event = InferenceEvent.model_validate(
        {
            "ts": "2024-06-03T08:00:00Z",
            "gateway": "g",
            "model": "m",
            "model_version": "v1",
            "request_id": "r1",
            "status": "ok",
            "latency_ms": 120.0,
        }
    )
    assert key_of(event) == "m"
    wrong = re.compile(r"by model and gateway|keyed by \(?model, gateway", re.IGNORECASE)
    texts = [*DOCS.rglob("*.md"), ROOT / "README.md", *(ROOT / "connectors").rglob("*.py")]
    said = [str(p.relative_to(ROOT)) for p in texts if wrong.search(p.read_text())]
    assert not said, f"these say inference is keyed by model and gateway: {said}"
