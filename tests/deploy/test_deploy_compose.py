"""The compose deployment parses with the real docker-compose and agrees with deploy/."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.deploy_support import DEPLOY, tool

COMPOSE_DIR = DEPLOY / "compose"
COMPOSE = COMPOSE_DIR / "docker-compose.yml"


def _config(*extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LLMWATCH_", "GRAFANA_"))}
    return subprocess.run(
        [
            tool("docker-compose"),
            "--project-directory",
            str(COMPOSE_DIR),
            "-f",
            str(COMPOSE),
            *extra,
            "config",
        ],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
        check=False,
    )


def _resolved() -> dict[str, Any]:
    proc = _config("--env-file", str(COMPOSE_DIR / ".env.example"), "--profile", "sim")
    assert proc.returncode == 0, proc.stderr
    resolved: dict[str, Any] = yaml.safe_load(proc.stdout)
    return resolved


def test_compose_file_is_valid_for_docker_compose() -> None:
    cfg = _resolved()
    assert {"kafka", "kafka-init", "worker", "notifier", "prometheus", "grafana"} <= set(
        cfg["services"]
    )


def test_missing_grafana_password_is_refused() -> None:
    proc = _config()
    assert proc.returncode != 0
    assert "GRAFANA_ADMIN_PASSWORD" in proc.stderr


def test_kafka_is_kraft_on_official_image() -> None:
    kafka = _resolved()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:3.")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "ZOOKEEPER" not in " ".join(env)


def test_workers_share_one_group_and_are_scraped() -> None:
    cfg = _resolved()["services"]
    worker = cfg["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert worker["command"] == ["worker"]
    assert cfg["notifier"]["command"] == ["notify"]
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    dns = jobs["llmwatch-worker"]["dns_sd_configs"][0]
    assert dns["names"] == ["worker"]
    assert str(dns["port"]) == worker["environment"]["LLMWATCH_WEB_PORT"]
    notifier_port = cfg["notifier"]["environment"]["LLMWATCH_NOTIFY_WEB_PORT"]
    assert jobs["llmwatch-notifier"]["static_configs"][0]["targets"] == [
        f"notifier:{notifier_port}"
    ]


def test_simulator_only_in_sim_profile() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    assert raw["services"]["simulator"]["profiles"] == ["sim"]
    # Every other service runs by default (docker-compose 1.x `config` lists all profiles).
    assert all("profiles" not in s for n, s in raw["services"].items() if n != "simulator")


def test_mounted_host_paths_exist() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    for name, svc in raw["services"].items():
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("."):
                assert (COMPOSE_DIR / src).exists(), f"{name} mounts missing {src}"
    grafana = raw["services"]["grafana"]
    assert any("provisioning" in v for v in grafana["volumes"])


def test_env_example_holds_no_secret_values() -> None:
    for line in (COMPOSE_DIR / ".env.example").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        if any(s in key for s in ("TOKEN", "KEY", "SECRET", "WEBHOOK_URL")):
            assert value == "", f"{key} must be empty in .env.example"


def test_kafka_init_creates_every_topic_as_strimzi_declares(tmp_path: Path) -> None:
    # Run the real init script with a stand-in kafka-topics.sh that records its arguments.
    script = yaml.safe_load(COMPOSE.read_text())["services"]["kafka-init"]["command"][0]
    script = script.replace("$$", "$")
    stub = tmp_path / "kafka-topics.sh"
    log = tmp_path / "calls"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    stub.chmod(0o755)
    script = script.replace("/opt/kafka/bin/kafka-topics.sh", str(stub))
    subprocess.run(["bash", "-ec", script], check=True, capture_output=True, timeout=30)
    created: dict[str, tuple[int, dict[str, str]]] = {}
    for call in log.read_text().splitlines():
        args = call.split()
        configs = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--config")
        name = args[args.index("--topic") + 1]
        created[name] = (int(args[args.index("--partitions") + 1]), configs)
    strimzi = {
        d["spec"]["topicName"]: (
            d["spec"]["partitions"],
            {k: str(v) for k, v in d["spec"]["config"].items()},
        )
        for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "strimzi-topics.yaml").read_text())
    }
    assert created == strimzi


def test_otlp_bridge_reads_a_created_topic_and_is_checked_on_its_own_port() -> None:
    cfg = _resolved()["services"]
    bridge = cfg["otlp-bridge"]
    args = bridge["command"]
    assert args[0] == "otlp-bridge"
    assert args[args.index("--topic") + 1] == "otlp_spans"
    assert args[args.index("--encoding") + 1] in ("otlp_proto", "otlp_json")
    assert bridge["environment"]["LLMWATCH_BOOTSTRAP_SERVERS"] == "kafka:9092"
    # The image's HEALTHCHECK polls the worker's port: the bridge's overrides it with its own.
    port = args[args.index("--port") + 1]
    assert port in [str(p) for p in bridge["expose"]]
    assert f"127.0.0.1:{port}/healthz" in " ".join(bridge["healthcheck"]["test"])
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "llmwatch-otlp-bridge")
    assert job["dns_sd_configs"][0] == {**job["dns_sd_configs"][0], "names": ["otlp-bridge"]}
    assert str(job["dns_sd_configs"][0]["port"]) == port
    init = " ".join(yaml.safe_load(COMPOSE.read_text())["services"]["kafka-init"]["command"])
    assert "t otlp_spans " in init  # auto-create is off: the topic must exist
