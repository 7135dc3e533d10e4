"""The deploy files and docs must speak the product's real interface.

A manifest that sets an environment variable the Settings model does not read, or
runs a subcommand that does not exist, deploys fine and then misbehaves at 3 a.m.;
these tests read every such reference and check it against the code.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.app import engine_table, worker_topics
from stream.cli import build_parser
from stream.kafka09 import changelog_topic
from stream.settings import Settings
from tests.deploy.deploy_support import DEPLOY, DOCS, ROOT

# Variables compose itself substitutes (${VAR}); they never reach llmwatch.
COMPOSE_ONLY = frozenset({"LLMWATCH_IMAGE"})
_ENV = re.compile(r"\bLLMWATCH_[A-Z0-9_]+\b")
_TEXT_SUFFIXES = {".md", ".yaml", ".yml", ".env", ".example", ".py", ".json", ""}


def _text_files() -> list[Path]:
    roots = [DEPLOY, DOCS]
    files = [p for r in roots for p in r.rglob("*") if p.is_file()]
    files.append(ROOT / "README.md")
    return [p for p in files if p.suffix in _TEXT_SUFFIXES or p.name.endswith(".example")]


def _settings_env_names() -> set[str]:
    return {f"LLMWATCH_{name.upper()}" for name in Settings.model_fields}


def test_every_env_variable_named_is_a_setting() -> None:
    known = _settings_env_names() | COMPOSE_ONLY
    unknown: dict[str, set[str]] = {}
    for path in _text_files():
        for name in _ENV.findall(path.read_text(errors="replace")):
            # Prefixes in prose ("LLMWATCH_TOPIC_*") are fine when some setting has them.
            if name.endswith("_") and any(k.startswith(name) for k in known):
                continue
            if name not in known:
                unknown.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert not unknown, f"not llmwatch settings: {unknown}"


def _compose_commands() -> list[tuple[str, list[str]]]:
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    out = []
    for name, service in compose["services"].items():
        image = str(service.get("image", ""))
        if "llmwatch" not in image and "build" not in service:
            continue  # kafka, prometheus, grafana
        if "entrypoint" in service:
            continue  # a shell step, not the llmwatch CLI
        command = service.get("command", ["worker"])
        args = shlex.split(command) if isinstance(command, str) else list(command)
        out.append((f"compose:{name}", args))
    return out


def _kubernetes_commands() -> list[tuple[str, list[str]]]:
    out = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for container in _containers(doc):
                if "llmwatch" in str(container.get("image", "")) and "args" in container:
                    out.append((f"{path.name}:{container['name']}", list(container["args"])))
    return out


def _containers(doc: Any) -> list[dict[str, Any]]:
    if not isinstance(doc, dict):
        return []
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def _substitute(args: list[str]) -> list[str]:
    # ${VAR:-default} -> default, as compose does with the variable unset.
    return [re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", a) for a in args]


COMMANDS = _compose_commands() + _kubernetes_commands()


def test_deploy_runs_commands() -> None:
    assert len(COMMANDS) >= 5, COMMANDS  # worker, notifier, simulator, k8s worker/notifier/agent


@pytest.mark.parametrize(("where", "args"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_deployed_command_lines_parse(where: str, args: list[str]) -> None:
    parser = build_parser()
    try:
        parsed = parser.parse_args(_substitute(args))
    except SystemExit:
        pytest.fail(f"{where}: `llmwatch {' '.join(args)}` does not parse", pytrace=False)
    assert getattr(parsed, "func", None) is not None, f"{where}: {args} runs nothing"


def test_the_parser_refuses_a_made_up_command() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["no-such-command"])


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    return loaded


def _kafka_init_topics() -> dict[str, int]:
    init = _compose()["services"]["kafka-init"]
    text = " ".join(str(c) for c in init.get("command", []))
    return {n: int(p) for n, p in re.findall(r"\bt\s+([A-Za-z0-9._-]+)\s+(\d+)", text)}


def _strimzi_topics() -> dict[str, int]:
    path = DEPLOY / "kubernetes" / "strimzi-topics.yaml"
    return {
        d["spec"].get("topicName", d["metadata"]["name"]): int(d["spec"]["partitions"])
        for d in yaml.safe_load_all(path.read_text())
        if isinstance(d, dict) and d.get("kind") == "KafkaTopic"
    }


def _worker_partitions() -> dict[str, int]:
    """LLMWATCH_PARTITIONS as each deployment gives it to its workers."""
    compose = int(_compose()["services"]["worker"]["environment"]["LLMWATCH_PARTITIONS"])
    docs = yaml.safe_load_all((DEPLOY / "kubernetes" / "worker.yaml").read_text())
    env = [
        e
        for d in docs
        if isinstance(d, dict) and d.get("kind") == "StatefulSet"
        for c in d["spec"]["template"]["spec"]["containers"]
        for e in c.get("env", [])
    ]
    k8s = [int(e["value"]) for e in env if e["name"] == "LLMWATCH_PARTITIONS"]
    assert len(k8s) == 1, "worker.yaml: the worker container must set LLMWATCH_PARTITIONS"
    return {"compose": compose, "strimzi": k8s[0]}


def test_every_topic_the_service_uses_is_created() -> None:
    defaults = Settings()
    wanted = {
        getattr(defaults, name) for name in Settings.model_fields if name.startswith("topic_")
    }
    wanted |= {s.name for s in worker_topics(defaults)}  # the engine changelog too
    for where, declared in (("compose", _kafka_init_topics()), ("strimzi", _strimzi_topics())):
        missing = wanted - set(declared)
        assert not missing, f"{where} does not create {sorted(missing)}"


def test_sources_and_changelog_share_the_workers_partition_count() -> None:
    # The worker refuses to start otherwise (stream.kafka09.check_copartitioned).
    defaults = Settings()
    sources = [defaults.topic_inference, defaults.topic_gpu, defaults.topic_metrics]
    sources += [defaults.topic_feedback, changelog_topic("llmwatch", engine_table("llmwatch"))]
    workers = _worker_partitions()
    for where, declared in (("compose", _kafka_init_topics()), ("strimzi", _strimzi_topics())):
        counts = {t: declared[t] for t in sources}
        assert set(counts.values()) == {workers[where]}, (where, counts, workers[where])
