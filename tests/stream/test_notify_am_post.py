"""``POST /api/v2/alerts`` and ``GET /api/v2/receivers``: bodies and answers valid against
the published Alertmanager spec, the real ``amtool alert add`` end to end (through the
alerts topic into the pipeline, back out of ``amtool alert query``), and bad bodies
refused whole with a 400 naming the field."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import SecretStr

from schemas.models import AlertStatus, Severity
from stream.alerting.labels import topic_key
from stream.notify.am_post import postable_alerts
from stream.notify.config import NotifyConfig
from stream.settings import Settings
from tests.connectors.notify_fakes import FakeClock, FakeWebhook, Reply, make_alert
from tests.connectors.notify_harness import (
    API_TOKEN,
    WEBHOOK_PATH,
    config_for,
    running,
    settings_for,
    until,
)
from tests.stream.test_notify_am_api import _amtool, _valid

SPEC = Path("/work/shared/specs/alertmanager-api-v2.openapi.yaml")
NOW = 1_780_000_000.0


def _receivers_schema_errors(body: Any) -> list[str]:
    spec = yaml.safe_load(SPEC.read_text())
    schema = spec["paths"]["/receivers"]["get"]["responses"]["200"]["schema"]
    full = {**schema, "definitions": spec["definitions"]}
    return [e.message for e in jsonschema.Draft4Validator(full).iter_errors(body)]


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def test_a_postable_alert_becomes_an_llmwatch_alert() -> None:
    body = [
        {
            "labels": {"alertname": "DiskFull", "severity": "critical", "host": "n1"},
            "annotations": {"summary": "disk 97% full", "runbook": "rb"},
            "startsAt": _iso(NOW - 60),
            "generatorURL": "http://prom:9090/graph?g0.expr=x",
        },
        {"labels": {"alertname": "Old"}, "startsAt": _iso(NOW - 600), "endsAt": _iso(NOW - 1)},
    ]
    _valid(body, "postableAlerts")
    firing, resolved = postable_alerts(body, NOW)
    assert firing.status == AlertStatus.FIRING and firing.severity == Severity.CRITICAL
    assert firing.title == "DiskFull" and firing.summary == "disk 97% full"
    assert firing.labels == {"alertname": "DiskFull", "host": "n1"}
    # No endsAt: it ends resolve_timeout (5 min) after it was posted, unless posted again.
    assert firing.starts_at.timestamp() == NOW - 60
    assert firing.ends_at is not None and firing.ends_at.timestamp() == NOW + 300
    assert firing.links.dashboard == "http://prom:9090/graph?g0.expr=x"
    assert firing.annotations["runbook"] == "rb"
    # Published under the worker's key, shared by every alert: one replica sees a cause
    # and its symptoms of other alert names (inhibition), whatever their names.
    assert topic_key(firing) == topic_key(make_alert(title="gpu.xid")) != b"DiskFull"
    # endsAt in the past: Prometheus resolving it; no severity label: warning.
    assert resolved.status == AlertStatus.RESOLVED and resolved.severity == Severity.WARNING
    # Same labels, same fingerprint (the pipeline's identity), whatever the order.
    again = postable_alerts(
        [{"labels": {"host": "n1", "severity": "critical", "alertname": "DiskFull"}}], NOW
    )
    assert again[0].fingerprint == firing.fingerprint != resolved.fingerprint
    # What amtool sends for "not given": Go's zero time; it means now / open-ended.
    zero = "0001-01-01T00:00:00.000Z"
    (unset,) = postable_alerts([{"labels": {"a": "b"}, "startsAt": zero, "endsAt": zero}], NOW)
    assert unset.status == AlertStatus.FIRING and unset.starts_at.timestamp() == NOW
    assert unset.ends_at is not None and unset.ends_at.timestamp() == NOW + 300
    (short,) = postable_alerts([{"labels": {"a": "b"}}], NOW, resolve_timeout_s=60.0)
    assert short.ends_at is not None and short.ends_at.timestamp() == NOW + 60


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"labels": {"a": "b"}}, "body"),
        ([{"annotations": {}}], "alerts[0].labels: required"),
        ([{"labels": {}}], "alerts[0].labels: at least one"),
        ([{"labels": ["x"]}], "alerts[0].labels"),
        ([{"labels": {"a": 1}}], "alerts[0].labels.a"),
        ([{"labels": {"a": "b"}}, {"labels": {"bad-name": "x"}}], "alerts[1].labels.bad-name"),
        ([{"labels": {"a": "b"}, "annotations": {"s": None}}], "alerts[0].annotations.s"),
        ([{"labels": {"a": "b"}, "startsAt": "yesterday"}], "alerts[0].startsAt"),
        ([{"labels": {"a": "b"}, "startsAt": 5}], "alerts[0].startsAt"),
        (
            [{"labels": {"a": "b"}, "startsAt": _iso(NOW), "endsAt": _iso(NOW - 5)}],
            "alerts[0].endsAt",
        ),
        ([{"labels": {"a": "b", "severity": "page"}}], "alerts[0].labels.severity"),
        ([{"labels": {"a": "b"}, "generatorURL": 3}], "alerts[0].generatorURL"),
        ([{"labels": {"alertname": "x" * 600}}], "alerts[0]: title"),
        (["nope"], "alerts[0]"),
    ],
)
def test_a_bad_body_names_its_field(body: Any, field: str) -> None:
    with pytest.raises(ValueError, match="^" + field.replace("[", r"\[").replace("]", r"\]")):
        postable_alerts(body, NOW)


def test_amtool_alert_add_and_receivers_against_llmwatch(
    embedded_broker: str, tmp_path: Path
) -> None:
    http_config = tmp_path / "amtool-http.yml"
    http_config.write_text(f"authorization:\n  type: Bearer\n  credentials: {API_TOKEN}\n")

    async def main() -> None:
        hook = FakeWebhook()
        async with hook.running() as hook_url:
            settings = settings_for(
                embedded_broker, tmp_path / "state", webhook_url=SecretStr(hook_url + WEBHOOK_PATH)
            )
            config = config_for(
                [{"name": "hook", "type": "webhook"}, {"name": "console", "type": "console"}],
                {
                    "receiver": "hook",
                    "routes": [{"receiver": "console", "matchers": ["team=db"]}],
                },
            )
            async with running(settings, config) as svc:
                status, names = await svc.get("/api/v2/receivers")
                assert status == 200 and _receivers_schema_errors(names) == []
                assert names == [{"name": "hook"}, {"name": "console"}]
                # Bad bodies first, with the alert name the good one uses (one partition,
                # in order): had any been published, more than one would be consumed.
                for bad in ({"x": 1}, [{"labels": {"alertname": "DiskFull", "severity": "x"}}]):
                    status, text = await svc.post("/api/v2/alerts", bad)
                    assert status == 400 and isinstance(text, str) and text.split(":")[0]
                status, text = await svc.post(
                    "/api/v2/alerts", [{"labels": {"alertname": "DiskFull", "0": "x"}}]
                )
                assert status == 400 and "alerts[0].labels.0" in text
                status, _ = await svc.post("/api/v2/alerts", [], headers={})
                assert status == 401  # a write: the bearer token, as on /api/*
                posted = [
                    {
                        "labels": {"alertname": "DiskFull", "team": "db", "severity": "error"},
                        "annotations": {"summary": "disk 97% full"},
                        "startsAt": _iso(svc.service.clock.now() - 30),
                        "generatorURL": "http://prom.example:9090/graph",
                    }
                ]
                _valid(posted, "postableAlerts")
                status, _ = await svc.post("/api/v2/alerts", posted)
                assert status == 200
                await svc.settled(1)
                assert svc.consumed() == 1
                _, alerts = await svc.get("/api/v2/alerts")
                _valid(alerts, "gettableAlerts")
                (got,) = alerts
                assert got["labels"]["team"] == "db" and got["labels"]["severity"] == "error"
                assert got["receivers"] == [{"name": "console"}]  # routed by the tree
                assert got["annotations"] == {"summary": "disk 97% full"}
                # The real amtool posts one more; it comes back through amtool's query.
                loop = asyncio.get_running_loop()

                def amtool(*args: str) -> str:
                    return _amtool(svc.url, http_config, *args)

                await loop.run_in_executor(
                    None,
                    amtool,
                    "alert",
                    "add",
                    "alertname=GpuHot",
                    "host=node-3",
                    "--annotation=summary=gpu at 91C",
                )
                await svc.settled(2)
                listed = json.loads(
                    await loop.run_in_executor(None, amtool, "alert", "query", "-o", "json")
                )
                by_name = {a["labels"]["alertname"]: a for a in listed}
                assert sorted(by_name) == ["DiskFull", "GpuHot"]
                assert by_name["GpuHot"]["labels"]["host"] == "node-3"
                assert by_name["GpuHot"]["annotations"] == {"summary": "gpu at 91C"}
                assert by_name["GpuHot"]["receivers"] == [{"name": "hook"}]

    asyncio.run(main())


def _to_hook(broker: str, tmp_path: Path, hook_url: str) -> tuple[Settings, NotifyConfig]:
    """A notifier telling one webhook everything, posted alerts ending 30 s after."""
    settings = settings_for(
        broker, tmp_path / "state", webhook_url=SecretStr(hook_url + WEBHOOK_PATH)
    )
    route = {"receiver": "hook"}
    return settings, config_for([{"name": "hook", "type": "webhook"}], route, resolve_timeout_s=30)


def test_a_posted_alert_not_posted_again_resolves_at_its_ends_at(
    embedded_broker: str, tmp_path: Path
) -> None:
    """Prometheus stops sending an alert (its rule is gone, or Prometheus died): the
    alert ends at its endsAt, or resolve_timeout after it was posted without one, and
    the receiver hears it resolved, as from Alertmanager. One sent again stays."""
    clock = FakeClock(NOW)  # moves only when the test moves it

    def told(hook: FakeWebhook, status: str) -> list[str]:
        return sorted(
            a["labels"]["alertname"]
            for seen in hook.requests
            if seen.body["status"] == status
            for a in seen.body["alerts"]
        )

    async def main() -> None:
        hook = FakeWebhook()
        async with hook.running() as hook_url:
            settings, config = _to_hook(embedded_broker, tmp_path, hook_url)
            async with running(settings, config, clock) as svc:
                posted = [
                    {"labels": {"alertname": "Dated"}, "endsAt": _iso(NOW + 60)},
                    {"labels": {"alertname": "Undated"}},  # resolve_timeout: NOW + 30
                    {"labels": {"alertname": "Kept"}, "endsAt": _iso(NOW + 60)},
                ]
                assert (await svc.post("/api/v2/alerts", posted))[0] == 200
                again = [{"labels": {"alertname": "Kept"}, "endsAt": _iso(NOW + 600)}]
                assert (await svc.post("/api/v2/alerts", again))[0] == 200
                await svc.settled(4)
                await until(lambda: told(hook, "firing") == ["Dated", "Kept", "Undated"])
                assert told(hook, "resolved") == []
                clock.t = NOW + 61
                await until(lambda: told(hook, "resolved") == ["Dated", "Undated"])
                assert svc.metric("llmwatch_notify_alerts_expired_total") == 2
                _, alerts = await svc.get("/api/v2/alerts")
                assert [a["labels"]["alertname"] for a in alerts] == ["Kept"]

    asyncio.run(main())


def test_a_restart_does_not_expire_an_alert_its_client_could_not_post_again(
    embedded_broker: str, tmp_path: Path
) -> None:
    """Down past an alert's endsAt: back up, the alert gets resolve_timeout to be posted
    again instead of a resolve and a second page."""
    clock = FakeClock(NOW)

    async def main() -> None:
        hook = FakeWebhook()
        async with hook.running() as hook_url:
            settings, config = _to_hook(embedded_broker, tmp_path, hook_url)
            body = [{"labels": {"alertname": "DiskFull"}, "startsAt": _iso(NOW)}]

            def statuses() -> list[str]:
                return [seen.body["status"] for seen in hook.requests]

            async with running(settings, config, clock) as svc:
                await svc.post("/api/v2/alerts", [{**body[0], "endsAt": _iso(NOW + 60)}])
                await svc.settled(1)
                await until(lambda: statuses() == ["firing"])
            clock.t = NOW + 300  # down for five minutes
            async with running(settings, config, clock) as svc:
                # Back up and reading before the client posts again (Prometheus resends
                # once a minute): the alert's old endsAt is long past.
                consumer = svc.service.consumer
                await until(lambda: consumer is not None and bool(consumer.assigned))
                clock.t = NOW + 310
                await asyncio.sleep(1.5)  # polls, flushes, and a lag query were one due
                assert statuses() == ["firing"]
                await svc.post("/api/v2/alerts", [{**body[0], "endsAt": _iso(NOW + 600)}])
                await svc.settled(1)
                clock.t = NOW + 500  # past the restart's grace, before the new endsAt
                await asyncio.sleep(1.0)  # several polls and flushes
                assert statuses() == ["firing"]
                assert svc.metric("llmwatch_notify_alerts_expired_total") == 0
                clock.t = NOW + 601
                await until(lambda: statuses() == ["firing", "resolved"])

    asyncio.run(main())


def test_an_alert_posted_again_behind_a_backlog_is_not_expired_first(
    embedded_broker: str, tmp_path: Path
) -> None:
    """Consumption paused (a delivery hangs at max_in_flight) while the client posts the
    alert again: its old endsAt passes, but the resend is still in the topic, so the
    alert must not end before it is read."""
    clock = FakeClock(NOW)

    async def main() -> None:
        hook = FakeWebhook()
        async with hook.running() as hook_url:
            settings, config = _to_hook(embedded_broker, tmp_path, hook_url)
            config = config.model_copy(update={"max_in_flight": 1})

            def told(name: str) -> list[str]:
                return [
                    seen.body["status"]
                    for seen in hook.requests
                    if seen.body["alerts"][0]["labels"]["alertname"] == name
                ]

            async with running(settings, config, clock) as svc:
                await svc.post("/api/v2/alerts", [_posted("DiskFull", NOW + 60)])
                await until(lambda: told("DiskFull") == ["firing"])
                hook.plan(Reply(action="hang"))  # the next delivery never returns ...
                await svc.post("/api/v2/alerts", [_posted("GpuHot", NOW + 600)])
                await until(lambda: svc.metric("llmwatch_notify_paused") == 1, what="a pause")
                await svc.post("/api/v2/alerts", [_posted("DiskFull", NOW + 600)])
                clock.t = NOW + 100  # past the first endsAt; the resend waits in the topic
                await asyncio.sleep(1.0)  # several polls and flushes
                assert told("DiskFull") == ["firing"]
                hook.release()  # ... until now: consumption resumes and reads the resend
                await svc.settled(3)
                await asyncio.sleep(0.5)
                assert told("DiskFull") == ["firing"]
                assert svc.metric("llmwatch_notify_alerts_expired_total") == 0

    asyncio.run(main())


def _posted(name: str, ends: float) -> dict[str, Any]:
    return {"labels": {"alertname": name}, "startsAt": _iso(NOW), "endsAt": _iso(ends)}
