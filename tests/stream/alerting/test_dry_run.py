"""The dispatch stages over a finished alert list (replay, the demo), on event time."""

from __future__ import annotations

from schemas.models import Alert
from stream.alerting.dry_run import dispatch
from stream.alerting.inhibit import default_inhibit_rules
from stream.alerting.route import Route
from stream.commands._demo_live import notification_line
from stream.commands.alerts import Seen
from tests.stream.alerting.test_pipeline import T0, alert


def _resolved(a: Alert, t: float) -> Alert:
    from datetime import UTC, datetime

    return a.model_copy(update={"status": "resolved", "ends_at": datetime.fromtimestamp(t, UTC)})


def _incidents() -> list[Alert]:
    """The demo's XID incident and an error burst elsewhere: 4 firing alerts, 2 incidents."""
    e = [
        alert(f"e{i}", "error_rate.error", t=T0, host="h2", gateway=g, model="m")
        for i, g in enumerate(("g1", "g2", "g3"))
    ]
    gpu = alert("gpu", "gpu.xid", detector="gpu_health", host="h2", gpu_uuid="G1")
    burst = alert("b1", "error_rate.error", host="h1", gateway="g1", model="m2")
    burst = burst.model_copy(update={"starts_at": burst.starts_at.replace(minute=59)})
    return [*e, gpu, burst, *(_resolved(x, T0 + 600) for x in (*e, gpu))]


def test_pages_are_counted_per_group_and_held_symptoms_are_not() -> None:
    route = Route.model_validate({"receiver": "c", "group_by": ["alertname"]})
    run = dispatch(_incidents(), route, default_inhibit_rules())
    summary = run.summary(incidents=2)
    # XID page; the burst (another alertname group, opened earlier) one page; the three
    # error_rate symptoms on h2 arrive with the cause and are held.
    assert summary["pages"] == 2 and summary["pages_per_incident"] == 1.0
    assert summary["held_by_inhibition"] == 3 and summary["alerts_notified"] == 2
    assert summary["folded_by_grouping"] == 0
    one_per_alert = dispatch(
        _incidents(), Route.model_validate({"receiver": "c", "group_by": ["..."]}), []
    )
    assert one_per_alert.summary(2)["pages"] == 5  # the old behaviour: every alert a page


def test_the_demo_summary_line() -> None:
    seen = [Seen(0.0, a) for a in _incidents()]
    line = notification_line(seen, 2)
    assert line.startswith("notifications      2 sent for 2 incidents (1.0 per incident), ")
    assert "3 held by inhibition" in line


def test_alerts_that_fire_and_resolve_between_looks_are_counted() -> None:
    """Every episode that fired is in the summary: told as firing, told only as resolved
    (beside its group's open incident) or held, here as transient (nothing told)."""
    from datetime import UTC, datetime

    def at(a: Alert, t: float) -> Alert:
        return a.model_copy(update={"starts_at": datetime.fromtimestamp(t, UTC)})

    route = Route.model_validate({"receiver": "c", "group_by": ["alertname"]})
    lone = alert("lone", "gpu.throttle", detector="gpu_health", host="h7")
    open_ = alert("open", "latency.p99", host="h1")
    brief = at(alert("brief", "latency.p99", host="h2"), T0 + 60)
    events = [lone, _resolved(lone, T0 + 10), open_, brief, _resolved(brief, T0 + 90)]
    summary = dispatch(events, route, []).summary(incidents=2)
    assert summary["alerts_notified"] == 1 and summary["told_only_resolved"] == 1
    assert summary["held_as_transient"] == 1 and summary["alerts_seen_firing"] == 3
    line = notification_line([Seen(0.0, a) for a in events], 2)
    assert "0 held by inhibition, 1 transient" in line
