"""Files in, files out: the whole of ``llmwatch replay`` without the argument parsing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemas.models import Alert
from stream.config import LlmwatchConfig

from .outputs import scores_paths, write_alerts, write_bad_rows, write_scores, write_summary
from .readers import open_source
from .report import write_report
from .runner import Replayer, ReplayResult
from .scoring import DEFAULT_GRACE_S, Incident, load_labels, summarize

if TYPE_CHECKING:  # the notifier's modules load only when pages are counted
    from stream.alerting.silences import Silence
    from stream.notify.config import NotifyConfig


def notifications(
    alerts: Sequence[Alert],
    incidents: int | None,
    notify: NotifyConfig | None = None,
    silences: Sequence[Silence] = (),
) -> dict[str, Any]:
    """What the notifier would have sent for these alerts: its stages (``notify``, else
    the notifier's default config, and ``silences``) run on event time, so tuning sees
    pages, not just alerts."""
    from stream.alerting.dry_run import dispatch
    from stream.notify.config import default_config

    cfg = notify if notify is not None else default_config()
    run = dispatch(
        alerts,
        cfg.route,
        cfg.inhibit_rules,
        silences=silences,
        quiet_on_resolve=cfg.quiet_on_resolve,
    )
    return run.summary(incidents)


@dataclass
class ReplayOutcome:
    result: ReplayResult
    summary: dict[str, Any] | None
    incidents: list[Incident]
    paths: dict[str, Path] = field(default_factory=dict)
    notifications: dict[str, Any] = field(default_factory=dict)  # the dispatch dry run


def replay_files(
    inputs: Sequence[Path],
    *,
    out: Path,
    labels: Path | None = None,
    config: LlmwatchConfig | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    report: bool = True,
    on_alert: Callable[[Alert], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    slice_s: float = 5.0,
    notify: NotifyConfig | None = None,
    silences: Sequence[Silence] = (),
    row_interval_s: float | None = None,
) -> ReplayOutcome:
    sources = [open_source(Path(p), row_interval_s) for p in inputs]
    incidents = load_labels(labels) if labels is not None else []
    replayer = Replayer(config, slice_s=slice_s, on_alert=on_alert, on_progress=on_progress)
    result = replayer.run(sources)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"alerts": write_alerts(out / "alerts.jsonl", result)}
    if result.bad_rows:
        paths["bad_rows"] = write_bad_rows(out / "bad_rows.jsonl", result)
    for table, path in zip(result.tables, scores_paths(out, result.tables), strict=True):
        paths[f"scores:{table.path.name}"] = write_scores(path, table)
    summary = None
    if labels is not None:
        summary = summarize(
            result.alerts,
            incidents,
            n_series=result.n_series,
            span_s=result.span_s,
            grace_s=grace_s,
        )
        summary["notifications"] = notifications(result.alerts, len(incidents), notify, silences)
        paths["summary"] = write_summary(out / "summary.json", summary, result)
    if report:
        paths["report"] = write_report(out / "report.html", result, incidents, summary, grace_s)
    pages = (
        summary["notifications"]
        if summary is not None
        else notifications(result.alerts, None, notify, silences)
    )
    return ReplayOutcome(result, summary, incidents, paths, pages)
