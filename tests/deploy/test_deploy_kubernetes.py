"""Kubernetes manifests against the Kubernetes OpenAPI schemas (kubernetes-validate, offline),
plus structural checks for the CRDs (KEDA, Strimzi, Prometheus Operator) it has no schema for."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.deploy_support import DEPLOY

K8S = DEPLOY / "kubernetes"
K8S_VERSION = "1.30.0"


def _docs() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        out += [(path, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def _kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in _docs() if d["kind"] == kind]


def _named(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in _kind(kind) if d["metadata"]["name"] == name)


_OBJ = {"type": "object"}


def _strict(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


_META = {"type": "object", "required": ["name"]}
# Subsets of the operators' CRD schemas for the fields llmwatch uses.
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "keda.sh/v1alpha1/ScaledObject": _strict(
        {
            "apiVersion": _OBJ | {"type": "string"},
            "kind": {"type": "string"},
            "metadata": _META,
            "spec": _strict(
                {
                    "scaleTargetRef": _strict(
                        {
                            "apiVersion": {"type": "string"},
                            "kind": {"enum": ["Deployment", "StatefulSet"]},
                            "name": {"type": "string"},
                        },
                        ["name"],
                    ),
                    "minReplicaCount": {"type": "integer", "minimum": 0},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "pollingInterval": {"type": "integer"},
                    "cooldownPeriod": {"type": "integer"},
                    "advanced": _OBJ,
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": _strict(
                            {
                                "type": {"const": "kafka"},
                                "metadata": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                    "required": [
                                        "bootstrapServers",
                                        "consumerGroup",
                                        "topic",
                                        "lagThreshold",
                                    ],
                                },
                            },
                            ["type", "metadata"],
                        ),
                    },
                },
                ["scaleTargetRef", "triggers"],
            ),
        },
        ["apiVersion", "kind", "metadata", "spec"],
    ),
    "monitoring.coreos.com/v1/ServiceMonitor": _strict(
        {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": _META,
            "spec": _strict(
                {
                    "selector": _OBJ,
                    "namespaceSelector": _OBJ,
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": _strict(
                            {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                "relabelings": {"type": "array"},
                            },
                            ["port"],
                        ),
                    },
                },
                ["selector", "endpoints"],
            ),
        },
        ["apiVersion", "kind", "metadata", "spec"],
    ),
    "kafka.strimzi.io/v1beta2/KafkaTopic": _strict(
        {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {
                "type": "object",
                "required": ["name", "labels"],
                "properties": {"labels": {"type": "object", "required": ["strimzi.io/cluster"]}},
            },
            "spec": _strict(
                {
                    "topicName": {"type": "string"},
                    "partitions": {"type": "integer", "minimum": 1},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                    "config": {"type": "object"},
                },
                ["partitions", "replicas"],
            ),
        },
        ["apiVersion", "kind", "metadata", "spec"],
    ),
    "kafka.strimzi.io/v1beta2/Kafka": _strict(
        {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": _META,
            "spec": _strict(
                {"kafka": {"type": "object", "required": ["listeners"]}, "entityOperator": _OBJ},
                ["kafka"],
            ),
        },
        ["apiVersion", "kind", "metadata", "spec"],
    ),
    "kafka.strimzi.io/v1beta2/KafkaNodePool": _strict(
        {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": _META,
            "spec": _strict(
                {
                    "replicas": {"type": "integer"},
                    "roles": {"type": "array", "items": {"enum": ["controller", "broker"]}},
                    "storage": _OBJ,
                    "resources": _OBJ,
                },
                ["replicas", "roles", "storage"],
            ),
        },
        ["apiVersion", "kind", "metadata", "spec"],
    ),
    "kustomize.config.k8s.io/v1beta1/Kustomization": {
        "type": "object",
        "required": ["resources"],
        "properties": {"resources": {"type": "array", "items": {"type": "string"}}},
    },
}


def _validate(doc: dict[str, Any]) -> None:
    key = f"{doc['apiVersion']}/{doc['kind']}"
    if key in CRD_SCHEMAS:
        jsonschema.validate(doc, CRD_SCHEMAS[key])
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("path_doc", _docs(), ids=lambda pd: f"{pd[0].name}:{pd[1]['kind']}")
def test_manifest_validates(path_doc: tuple[Path, dict[str, Any]]) -> None:
    _validate(path_doc[1])


def test_validator_rejects_a_misspelt_field() -> None:
    sts = copy.deepcopy(_named("StatefulSet", "llmwatch-worker"))
    sts["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(sts)
    scaled = copy.deepcopy(_kind("ScaledObject")[0])
    scaled["spec"]["maxReplicas"] = 3
    with pytest.raises(jsonschema.ValidationError):
        _validate(scaled)


def test_kustomization_lists_existing_files() -> None:
    for name in _kind("Kustomization")[0]["resources"]:
        assert (K8S / name).is_file(), name


@pytest.mark.parametrize("name", ["llmwatch-worker", "llmwatch-notifier"])
def test_state_is_kept_on_a_volume(name: str) -> None:
    # Worker: RocksDB cache of the changelog. Notifier: the delivery ledger that stops
    # a restarted notifier from paging again.
    sts = _named("StatefulSet", name)
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    container = sts["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert "state" in claims
    assert mounts["state"] == env["LLMWATCH_STATE_DIR"]


def test_every_container_requests_resources() -> None:
    for kind in ("StatefulSet", "Deployment", "DaemonSet"):
        for doc in _kind(kind):
            for c in doc["spec"]["template"]["spec"]["containers"]:
                assert {"cpu", "memory"} <= set(c["resources"]["requests"]), doc["metadata"]
                assert "memory" in c["resources"]["limits"]


def test_selectors_match_their_pods() -> None:
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for k in ("StatefulSet", "Deployment")
        for d in _kind(k)
    }
    for kind in ("Service", "PodDisruptionBudget"):
        for doc in _kind(kind):
            sel = doc["spec"]["selector"]
            sel = sel.get("matchLabels", sel)
            assert any(sel.items() <= labels.items() for labels in pods.values()), doc["metadata"]


def test_keda_does_not_scale_past_the_partitions() -> None:
    scaled = _kind("ScaledObject")[0]
    trigger = scaled["spec"]["triggers"][0]["metadata"]
    topics = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in _kind("KafkaTopic")}
    assert scaled["spec"]["maxReplicaCount"] <= topics[trigger["topic"]]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "llmwatch-worker"


def test_history_and_silence_topics_are_compacted() -> None:
    topics = {t["spec"]["topicName"]: t["spec"]["config"] for t in _kind("KafkaTopic")}
    assert "compact" in topics["llmwatch.alerts"]["cleanup.policy"]
    assert topics["llmwatch.silences"]["cleanup.policy"] == "compact"
    assert {
        "llmwatch.inference",
        "llmwatch.gpu",
        "llmwatch.feedback",
        "llmwatch.deadletter",
    } <= set(topics)


def _arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_otlp_bridge_reads_a_declared_topic_in_one_group() -> None:
    from connectors.otlp_bridge import DEFAULT_GROUP, DEFAULT_SOURCE_TOPIC

    assert "otlp-bridge.yaml" in _kind("Kustomization")[0]["resources"]
    bridge = _named("Deployment", "llmwatch-otlp-bridge")
    args = bridge["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "otlp-bridge"
    topics = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in _kind("KafkaTopic")}
    source = _arg(args, "--topic")
    assert source == DEFAULT_SOURCE_TOPIC  # the Collector exporter's default
    # Stateless: several replicas share one group, each needs a partition to do anything.
    assert 2 <= bridge["spec"]["replicas"] <= topics[source]
    assert _arg(args, "--group") == DEFAULT_GROUP
    # /metrics and /healthz on the port the probes, the Service and the ServiceMonitor name.
    container = bridge["spec"]["template"]["spec"]["containers"][0]
    port = int(_arg(args, "--port"))
    assert container["ports"] == [{"name": "web", "containerPort": port}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "web"}
    service = _named("Service", "llmwatch-otlp-bridge")
    assert service["spec"]["ports"][0]["name"] == "web"  # what the ServiceMonitor scrapes
    assert service["metadata"]["labels"]["app.kubernetes.io/part-of"] == "llmwatch"
    # It must not join the workers' group: the bridge reads none of their topics.
    worker = _named("StatefulSet", "llmwatch-worker")
    assert worker["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker"]
