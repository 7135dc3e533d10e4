"""Every dashboard panel and every metric a Prometheus rule reads has data, from real traffic.

A real ``llmwatch worker`` process consumes a simulated fleet (one error burst, a few
malformed messages) from the embedded broker; a real notifier (in-process, its real
HTTP server) delivers the worker's alerts plus three of the test's to a local webhook
that makes one retry, one dead letter, and one silenced by an API silence; the Debian
``prometheus`` binary scrapes both, and a real OTLP bridge over a few OTLP messages
(``bridge_support``), with the shipped rule files. Then every panel query
of both dashboards (template variables resolved from Prometheus, as Grafana would)
and every metric name in the rules is evaluated against that Prometheus, and each
must return series. Nothing sets a metric by hand.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from confluent_kafka import Producer
from pydantic import SecretStr

from stream.settings import Settings
from stream.simulate import FleetSpec, Incident, simulate
from tests.connectors.notify_fakes import FakeWebhook, Reply, Seen, make_alert
from tests.connectors.notify_harness import (
    WEBHOOK_PATH,
    Running,
    config_for,
    publish,
    running,
    settings_for,
)
from tests.deploy.bridge_support import running_bridge
from tests.deploy.deploy_support import (
    ALIAS_RULES,
    DASHBOARDS,
    PROMETHEUS_SYNTHETIC,
    RULES,
    promql_metric_names,
    tool,
)
from tests.integration.workerkit import MALFORMED, WorkerProc, free_port, key_of

pytestmark = pytest.mark.integration

TARGET = {"gateway": "gw-us-east", "model": "llama-3-8b"}
# One busy series: the latency detector's version window needs ~300 rows (p99 with 3
# rows above it) before it keeps a baseline, i.e. ~3.5 requests/s; this is 15.
SPEC = FleetSpec(
    duration_s=240,
    rate=15,
    gateways=("gw-us-east",),
    models=("llama-3-8b",),
    versions=(1,),
    hosts=1,
    gpus_per_host=2,
    gpu_interval_s=5,
)
BURST = Incident(
    kind="error_burst", start_offset_s=120, duration_s=100, severity=2.5, target=TARGET
)
_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$")
_VAR = re.compile(r"\$(\w+)")


def _webhook() -> FakeWebhook:
    """200 for everything but: fp-retry's first try (503), fp-dead (400: dead letter)."""
    hook = FakeWebhook()
    tried: set[str] = set()

    def rule(seen: Seen) -> Reply | None:
        fps = {a.get("fingerprint") for a in (seen.body or {}).get("alerts", [])}
        if "fp-dead" in fps:
            return Reply(status=400)
        if "fp-retry" in fps and "fp-retry" not in tried:
            tried.add("fp-retry")
            return Reply(status=503)
        return None

    hook.rule = rule
    return hook


def _test_alerts() -> list[Any]:
    return [
        make_alert(alert_id=f"a-{name}", fingerprint=f"fp-{name}", labels={"model": model})
        for name, model in (("retry", "m-retry"), ("dead", "m-dead"), ("quiet", "m-silenced"))
    ]


def _publish_fleet(broker: str, settings: Settings) -> int:
    topics = {
        "inference": settings.topic_inference,
        "gpu": settings.topic_gpu,
        "feedback": settings.topic_feedback,
        "metric": settings.topic_metrics,
    }
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 5})
    n = 0
    for chunk in simulate(SPEC, [BURST]):
        for ev in chunk:
            producer.produce(topics[ev["kind"]], key=key_of(ev), value=orjson.dumps(ev))
            n += 1
        producer.poll(0)
    for raw in MALFORMED:
        producer.produce(settings.topic_inference, key=b"gw-us-east|llama-3-8b", value=raw)
    assert producer.flush(15) == 0
    return n + len(MALFORMED)


class Prom:
    """The Debian prometheus binary, scraping the worker, the notifier and an OTLP bridge."""

    def __init__(self, tmp: Path, worker_port: int, notifier_port: int, bridge_port: int) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES), str(ALIAS_RULES)],
            "scrape_configs": [
                {
                    "job_name": "llmwatch-worker",
                    "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}],
                },
                {
                    # Its /metrics asks the broker for the consumer lag: give it time.
                    "job_name": "llmwatch-notifier",
                    "scrape_interval": "3s",
                    "scrape_timeout": "3s",
                    "static_configs": [{"targets": [f"127.0.0.1:{notifier_port}"]}],
                },
                {
                    "job_name": "llmwatch-otlp-bridge",
                    "static_configs": [{"targets": [f"127.0.0.1:{bridge_port}"]}],
                },
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def query(self, http: aiohttp.ClientSession, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query"
        async with http.get(url, params={"query": expr}) as resp:
            body = await resp.json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def targets(self, http: aiohttp.ClientSession) -> list[str]:
        url = f"http://127.0.0.1:{self.port}/api/v1/targets"
        async with http.get(url) as resp:
            body = await resp.json()
        return [
            f"{t['labels']['job']}: {t['health']} {t.get('lastError', '')}"
            for t in body["data"]["activeTargets"]
        ]

    async def rules(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/rules"
        async with http.get(url) as resp:
            body = await resp.json()
        return [r for g in body["data"]["groups"] for r in g["rules"]]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _boards() -> Iterator[tuple[str, list[tuple[str, str]], list[tuple[str, str]]]]:
    """(dashboard, [(panel title, expr)], [(variable, label_values query)])."""
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        panels = [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
        variables = [(v["name"], v["query"]["query"]) for v in board["templating"]["list"]]
        yield path.name, panels, variables


def _promql_regex(value: str) -> str:
    """A literal inside a PromQL regex string, escaped as Grafana's Prometheus source does
    (metacharacters get a backslash, written doubled inside the PromQL string)."""
    return re.sub(r"([\\.+*?^$()\[\]{}|])", r"\\\\\1", value)


def _resolve(expr: str, values: dict[str, str]) -> str:
    return _VAR.sub(lambda m: values.get(m.group(1), m.group(0)), expr)


async def _variables(
    prom: Prom, http: aiohttp.ClientSession, variables: list[tuple[str, str]]
) -> tuple[dict[str, str], list[str]]:
    """Each variable's values from Prometheus, in order (later ones use earlier ones);
    substituted as Grafana's "All" of the found values would be: a|b|c."""
    values: dict[str, str] = {}
    problems = []
    for name, query in variables:
        m = _LABEL_VALUES.match(query)
        assert m, query
        selector, label = _resolve(m.group(1), values), m.group(2)
        found = [
            r["metric"].get(label)
            for r in await prom.query(http, f"count by ({label}) ({selector})")
        ]
        found = [v for v in found if v]
        if not found:
            problems.append(f"variable ${name}: {query} found no values")
        values[name] = "|".join(_promql_regex(v) for v in sorted(found)) or ".*"
    return values, problems


async def _empty_queries(prom: Prom, http: aiohttp.ClientSession) -> tuple[list[str], int]:
    problems: list[str] = []
    n = 0
    for board, panels, variables in _boards():
        values, bad = await _variables(prom, http, variables)
        problems += [f"{board}: {p}" for p in bad]
        n += len(variables)
        for title, expr in panels:
            n += 1
            if not await prom.query(http, _resolve(expr, values)):
                problems.append(f"{board} / {title}: {expr}")
    for name in sorted(_rule_metrics()):
        n += 1
        if not await prom.query(http, name):
            problems.append(f"rule metric {name}")
    return problems, n


def _rule_metrics() -> set[str]:
    names: set[str] = set()
    for path in (RULES, ALIAS_RULES):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                names |= promql_metric_names(rule["expr"])
    return names - {"absent"} | (PROMETHEUS_SYNTHETIC & {"up"})


def _worker_env(broker: str, settings: Settings, tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LLMWATCH_BOOTSTRAP_SERVERS": broker,
        "LLMWATCH_STATE_DIR": str(tmp / "worker-state"),
        "LLMWATCH_STORE": "memory://",
        "LLMWATCH_CHECKPOINT_INTERVAL_S": "1",
        "LLMWATCH_TOPIC_ALERTS": settings.topic_alerts,
        "LLMWATCH_TOPIC_DEADLETTER": settings.topic_deadletter + ".worker",
    }


async def _until(check: Any, limit_s: float, what: str, worker: WorkerProc) -> None:
    deadline = time.monotonic() + limit_s
    last: Any = None
    while time.monotonic() < deadline:
        if not worker.alive():
            raise AssertionError(f"worker exited:\n{worker.tail()}")
        last = await check()
        if not last:
            return
        await asyncio.sleep(0.5)  # polling real processes; no clock to inject across them
    raise AssertionError(f"{what} not reached in {limit_s} s; still missing: {last}")


def _worker_has(worker: WorkerProc, needles: list[str]) -> list[str]:
    from tests.integration.workerkit import get

    try:
        text = get(f"http://127.0.0.1:{worker.port}/metrics").decode()
    except OSError:
        return needles
    return [n for n in needles if n not in text]


@pytest.fixture
def own_broker() -> Iterator[str]:
    """A private embedded broker: this test publishes to the default topic names, which
    on the shared session broker would reach every later worker test reading them."""
    from stream.broker import EmbeddedBroker

    with EmbeddedBroker() as bootstrap:
        yield bootstrap


def test_every_panel_and_rule_metric_has_data(own_broker: str, tmp_path: Path) -> None:
    embedded_broker = own_broker

    async def main() -> tuple[int, str]:
        hook = _webhook()
        async with hook.running() as hook_url:
            settings = settings_for(
                embedded_broker,
                tmp_path / "notify-state",
                webhook_url=SecretStr(f"{hook_url}{WEBHOOK_PATH}"),
            )
            config = config_for(
                [{"name": "hook", "type": "webhook"}],
                {"receiver": "hook", "group_by": ["..."], "group_wait": 0},
                retry={"base_s": 0.2, "cap_s": 1.0},
            )
            worker = WorkerProc(
                _worker_env(embedded_broker, settings, tmp_path), tmp_path / "w.log"
            )
            worker.start()
            try:
                async with running(settings, config) as svc:
                    with running_bridge(embedded_broker) as bridge_port:
                        return await _scenario(
                            svc, worker, hook, settings, tmp_path, embedded_broker, bridge_port
                        )
            finally:
                worker.stop()

    async def _scenario(
        svc: Running,
        worker: WorkerProc,
        hook: FakeWebhook,
        settings: Settings,
        tmp: Path,
        broker: str,
        bridge_port: int,
    ) -> tuple[int, str]:
        status, _ = await svc.post(
            "/api/silences",
            {
                "matchers": ['model="m-silenced"'],
                "duration": "2h",
                "created_by": "test",
                "comment": "panel data",
            },
        )
        assert status == 201
        began = time.monotonic()
        await asyncio.to_thread(worker.wait_healthy, 60)
        print(f"worker healthy after {time.monotonic() - began:.1f} s")
        notifier_port = int(svc.url.rsplit(":", 1)[1])
        prom = Prom(tmp, worker.port, notifier_port, bridge_port)
        try:
            await asyncio.to_thread(_publish_fleet, broker, settings)
            await asyncio.to_thread(publish, broker, settings.topic_alerts, _test_alerts())
            # The worker has learned a baseline, raised alerts and rejected the malformed.
            await _until(
                lambda: asyncio.to_thread(
                    _worker_has,
                    worker,
                    [
                        "llmwatch_fleet_baseline_seconds{",
                        "llmwatch_alerts_total{",
                        "llmwatch_rejects_total{",
                    ],
                ),
                90,
                "worker baselines, alerts and rejects",
                worker,
            )

            def notifier_missing() -> list[str]:
                want = {
                    ("llmwatch_notify_deliveries_total", "sent"),
                    ("llmwatch_notify_deliveries_total", "dead_lettered"),
                    ("llmwatch_notify_retries_total", ""),
                    ("llmwatch_notify_silenced_total", ""),
                }
                out = []
                for name, outcome in want:
                    labels = {"receiver": "hook", **({"outcome": outcome} if outcome else {})}
                    if not svc.metric(name, labels):
                        out.append(f"{name} {outcome}")
                return out

            async def notifier_check() -> list[str]:
                return notifier_missing()

            print(f"worker learned after {time.monotonic() - began:.1f} s")
            await _until(notifier_check, 60, "notifier outcomes", worker)
            print(f"notifier outcomes after {time.monotonic() - began:.1f} s")
            assert not hook.invalid
            async with aiohttp.ClientSession() as http:

                async def panels() -> list[str]:
                    problems, _ = await _empty_queries(prom, http)
                    return problems and [*problems, *await prom.targets(http)]

                await _until(panels, 60, "every panel and rule metric with data", worker)
                problems, n = await _empty_queries(prom, http)
                assert not problems
                rules = await prom.rules(http)
                shipped = sum(
                    len(g["rules"])
                    for path in (RULES, ALIAS_RULES)
                    for g in yaml.safe_load(path.read_text())["groups"]
                )
                assert len(rules) == shipped
                assert not {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
                states = {r["name"]: r.get("state") for r in rules if r["type"] == "alerting"}
                # Both are scraped and up: neither "down" alert may be on its way.
                assert states["LlmwatchWorkerDown"] == states["LlmwatchNotifierDown"] == "inactive"
                print(f"every query non-empty after {time.monotonic() - began:.1f} s")
            from tests.integration.workerkit import get

            text = await asyncio.to_thread(get, f"http://127.0.0.1:{worker.port}/metrics")
            checked = subprocess.run(
                [tool("promtool"), "check", "metrics"],
                input=text,
                capture_output=True,
                timeout=60,
                check=False,
            )
            return n, (checked.stdout + checked.stderr).decode()
        finally:
            prom.stop()

    evaluated, promtool_out = asyncio.run(main())
    print(json.dumps({"queries_evaluated": evaluated, "all_non_empty": True}))
    assert evaluated >= 50
    # The real worker's /metrics, after real traffic, passes promtool too.
    assert promtool_out == ""


def test_rule_metric_names_cover_both_rule_files() -> None:
    names = _rule_metrics()
    assert "llmwatch_consumer_lag" in names and "llmwatch_fleet_latency_seconds" in names
    assert "up" in names and "absent" not in names
