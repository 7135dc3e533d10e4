"""RESULTS.md from run_all's JSON: machine, date, commands, each figure against its target."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = tuple[str, str, str, str]  # figure, value, target, verdict

NOTES = [
    "- Service throughput: each consumer is a fresh process on its own topic; the harness "
    "tops the topic up whenever the consumer's lag drops below a mark, because the embedded "
    "broker (librdkafka's mock cluster) keeps only ~5 MB per partition and cannot be "
    "pre-filled with a million events. Rates run from the first consumed event to the last "
    "(start-up and group join excluded). The ceiling is Faust itself doing nothing: the "
    "worker can never beat it. The worker's busy share is the part of the drain it spent "
    "in batches (decode, detect, lifecycle); the rest it waited for fetches, and its rate "
    "while busy is what one worker's processing costs.",
    "- Detection latency: wall time from handing the first failing event of the burst's "
    "series to the producer until its firing alert arrives on the alerts topic, with the "
    "lifecycle `for_s` at 0; the shipped `for_s` (30 s of event time) adds exactly that "
    "much by policy. Event time is the wall clock there, so the alert's `starts_at` splits "
    "it: evidence is the event time until the end of the batch that fired (what the "
    "detector needed, plus the rest of that batch), pipeline is the service's delay after.",
    "- Memory: RSS growth of one engine with the default detectors, per new series, each "
    "series with its own host and version (so it is a new key at every level of every "
    "detector: the worst case); marginal is the cost per series between two sizes, with "
    "the fixed per-model costs cancelled. A size whose projected RSS exceeds half the "
    "memory available is extrapolated linearly and marked. The latency state figure is "
    "per latency key, (model, version, gateway) or (host, model); a benchmark series is "
    "a new key at both, so it holds twice that. The metric-series rows feed scraped "
    "series instead (40 rows each, one run per sampling interval), which only the series "
    "detector sees: a series sampled every 5 minutes or slower holds a ring of its last "
    "values (the nearest-value statistic), a faster one does not.",
    "- The 2-core machine is shared with other jobs: the load average above says how busy "
    "it was, and ratios measured in the same run are the figures to compare.",
]


def dig(obj: Any, *path: str | int) -> Any:
    """``obj[p0][p1]...`` or None when any step is missing."""
    for p in path:
        try:
            obj = obj[p]
        except (KeyError, IndexError, TypeError):
            return None
    return obj


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.3g}{unit}" if abs(value) < 100 else f"{value:,.0f}{unit}"
    if isinstance(value, int | float):
        return f"{value:,.0f}{unit}"
    return str(value)


def verdict(value: Any, ok: Callable[[Any], bool]) -> str:
    if value is None:
        return "not measured"
    return "met" if ok(value) else "**not met**"


def target_rows(b: dict[str, Any]) -> list[Row]:
    st = dig(b, "service_throughput", "result")
    lat = dig(b, "detection_latency", "result")
    mem = dig(b, "memory", "result")
    ker = dig(b, "kernels", "result")
    rep = dig(b, "replay_speed", "result")
    q = dig(b, "quality", "result", "overall")
    src = dig(b, "quality", "result", "simulator_reference")
    sim = {"trace files": " (fleets from the trace files)", "fits": " (fleets from fits)"}.get(
        src or "", ""
    )
    ewma = dig(ker, "kernels", "ewma_latency_baseline", "numba_batch_65536")
    e2e = dig(st, "llmwatch", "events_per_s")
    vs_naive = dig(st, "llmwatch_vs_naive")
    vs_ceil = dig(st, "llmwatch_vs_ceiling")
    # A burst that was never alerted on is a miss, not a fast detection.
    missed = lat is not None and dig(lat, "detected") != dig(lat, "injections")
    p99 = float("inf") if missed else dig(lat, "p99_s")
    lat_bytes = dig(mem, "latency_detector_bytes_per_series")
    rss_1m = dig(mem, "rss_1m_series_bytes")
    replay = dig(rep, "jsonl", "replay_inference_per_s")
    gib = 2**30
    rows: list[Row] = [
        ("End to end, one worker (embedded broker)", fmt(e2e, " ev/s"), ">= 100,000 ev/s", ""),
        ("End to end vs naive Faust+pydantic+River", fmt(vs_naive, "x"), ">= 5x", ""),
        ("End to end vs no-processing ceiling", fmt(vs_ceil), ">= 0.35", ""),
        (
            f"Detection latency p99 at {fmt(dig(lat, 'rate_events_per_s'))} ev/s",
            fmt(dig(lat, "p99_s"), " s")
            + (f" ({dig(lat, 'detected')}/{dig(lat, 'injections')} detected)" if missed else ""),
            "<= 1 s at 20k ev/s",
            "",
        ),
        ("Latency detector state per series", fmt(lat_bytes, " B"), "<= 1 KiB", ""),
        (
            "RSS at 1M series" + (" (extrapolated)" if dig(mem, "rss_1m_extrapolated") else ""),
            fmt(None if rss_1m is None else rss_1m / gib, " GiB"),
            "<= 1.5 GiB",
            "",
        ),
        ("Kernel: latency baseline (EWMA) at batch 64k", fmt(ewma, " ev/s"), ">= 20M ev/s", ""),
        ("Replay JSONL, inference events, one core", fmt(replay, " ev/s"), ">= 300k ev/s", ""),
        (f"Quality: recall{sim}", fmt(dig(q, "recall")), ">= 0.95", ""),
        (f"Quality: precision{sim}", fmt(dig(q, "precision")), ">= 0.90", ""),
    ]
    checks: list[tuple[Any, Callable[[Any], bool]]] = [
        (e2e, lambda v: v >= 100_000),
        (vs_naive, lambda v: v >= 5),
        (vs_ceil, lambda v: v >= 0.35),
        (p99, lambda v: v <= 1.0 and dig(lat, "rate_events_per_s") >= 20_000),
        (lat_bytes, lambda v: v <= 1024),
        (rss_1m, lambda v: v <= 1.5 * gib),
        (ewma, lambda v: v >= 20e6),
        (replay, lambda v: v >= 300_000),
        (dig(q, "recall"), lambda v: v >= 0.95),
        (dig(q, "precision"), lambda v: v >= 0.90),
    ]
    return [(a, v, t, verdict(x, ok)) for (a, v, t, _), (x, ok) in zip(rows, checks, strict=True)]


def detail_rows(b: dict[str, Any]) -> list[tuple[str, str]]:
    st = dig(b, "service_throughput", "result") or {}
    out = [
        (f"service: {name} ev/s", fmt(dig(st, name, "events_per_s")))
        for name in ("ceiling", "llmwatch", "naive")
    ]
    dec = dig(b, "decode_speed", "result") or {}
    out += [
        ("decode_columns ev/s", fmt(dec.get("decode_columns_events_per_s"))),
        ("pydantic decode ev/s", fmt(dec.get("pydantic_events_per_s"))),
        ("decode speedup vs pydantic", fmt(dec.get("speedup"), "x")),
        (
            "OTLP GenAI spans/s, proto / json (vs llmwatch JSON ev/s, same requests)",
            " / ".join(
                fmt(dig(b, "otlp_decode", "result", k))
                for k in ("otlp_proto_spans_per_s", "otlp_json_spans_per_s", "json_events_per_s")
            ),
        ),
        (
            "replay JSONL decode-only rows/s",
            fmt(dig(b, "replay_speed", "result", "jsonl", "decode_only_rows_per_s")),
        ),
        ("replay CSV rows/s", fmt(dig(b, "replay_speed", "result", "csv", "replay_rows_per_s"))),
        (
            "service: worker busy share / ev/s while busy / mean batch",
            f"{fmt(dig(st, 'llmwatch', 'worker', 'busy_share'))} / "
            f"{fmt(dig(st, 'llmwatch', 'worker', 'events_per_busy_s'))} / "
            f"{fmt(dig(st, 'llmwatch', 'worker', 'mean_batch'))}",
        ),
        ("detection latency p50", fmt(dig(b, "detection_latency", "result", "p50_s"), " s")),
        (
            "detection latency split (p50): detector evidence / service pipeline",
            f"{fmt(dig(b, 'detection_latency', 'result', 'evidence_p50_s'), ' s')} / "
            f"{fmt(dig(b, 'detection_latency', 'result', 'pipeline_p50_s'), ' s')}",
        ),
        (
            "service on Kafka 0.9: ceiling / llmwatch / naive ev/s",
            " / ".join(
                fmt(dig(b, "service_throughput_kafka09", "result", k, "events_per_s"))
                for k in ("ceiling", "llmwatch", "naive")
            ),
        ),
        (
            "service on Kafka 0.9: llmwatch/naive, llmwatch/ceiling",
            f"{fmt(dig(b, 'service_throughput_kafka09', 'result', 'llmwatch_vs_naive'), 'x')}, "
            f"{fmt(dig(b, 'service_throughput_kafka09', 'result', 'llmwatch_vs_ceiling'))}",
        ),
        (
            "detection latency p50 / p99 at 2k ev/s (detected/injected)",
            f"{fmt(dig(b, 'detection_latency_2k', 'result', 'p50_s'), ' s')} / "
            f"{fmt(dig(b, 'detection_latency_2k', 'result', 'p99_s'), ' s')} "
            f"({fmt(dig(b, 'detection_latency_2k', 'result', 'detected'))}/"
            f"{fmt(dig(b, 'detection_latency_2k', 'result', 'injections'))})",
        ),
    ]
    for name, row in (dig(b, "kernels", "result", "kernels") or {}).items():
        out.append((f"kernel {name} @64k vs Python", fmt(row.get("speedup_batch_65536"), "x")))
    for row in dig(b, "memory", "result", "sizes") or []:
        tag = " (extrapolated)" if row.get("extrapolated") else ""
        out.append(
            (
                f"memory RSS/series @ {fmt(row.get('series'))}{tag}",
                fmt(row.get("rss_bytes_per_series"), " B")
                + (
                    f" (marginal {fmt(row['marginal_bytes_per_series'], ' B')})"
                    if "marginal_bytes_per_series" in row
                    else ""
                ),
            )
        )
    for row in dig(b, "memory", "result", "metric_series") or []:
        every = fmt(row.get("interval_s"), " s")
        value = (
            f"error: {str(row['error'])[:80]}"
            if "error" in row
            else f"{fmt(row.get('rss_bytes_per_series'), ' B')} (series detector state "
            f"{fmt(row.get('series_detector_bytes_per_series'), ' B')})"
        )
        out.append((f"memory RSS/series, metric series every {every}", value))
    return out


def _us(rate: Any) -> str:
    return f"{1e6 / rate:.1f} us" if rate else "n/a"


def why_not(b: dict[str, Any]) -> list[str]:
    """For each target this run missed, the budget it implies against the figures of
    the same run that already exceed it."""
    out: list[str] = []
    st = dig(b, "service_throughput", "result")
    if dig(st, "meets", "events_per_s") is False:
        target = dig(st, "targets", "events_per_s") or 100_000
        ceil = dig(st, "ceiling", "events_per_s")
        ceil09 = dig(b, "service_throughput_kafka09", "result", "ceiling", "events_per_s")
        decode = dig(b, "decode_speed", "result", "decode_columns_events_per_s")
        busy = dig(st, "llmwatch", "worker", "events_per_busy_s")
        text = f"- End to end {fmt(target)} ev/s: the ceiling (Faust consuming, no processing)"
        text += f" is {fmt(ceil)} ev/s on the embedded broker"
        if ceil and ceil < target:
            text += ", below the target, so no worker reaches it there"
        if ceil09 and ceil09 > target:
            budget = 1e6 / target - 1e6 / ceil09
            text += (
                f"; on Kafka 0.9 it is {fmt(ceil09)} ev/s, which leaves {budget:.1f} us per "
                f"event for all processing. Decoding alone takes {_us(decode)} per event "
                f"(decode_columns), and the worker's batches {_us(busy)} (its rate while busy)"
            )
        out.append(text + ".")
    rp = dig(b, "replay_speed", "result", "jsonl")
    if dig(rp, "meets_target") is False:
        target = dig(rp, "target_inference_per_s") or 300_000
        out.append(
            f"- Replay {fmt(target)} ev/s on one core: {_us(target)} per event for reading, "
            f"decoding, detecting and alerting; reading and decoding alone take "
            f"{_us(dig(rp, 'decode_only_rows_per_s'))} per event."
        )
    mem = dig(b, "memory", "result")
    if dig(mem, "meets", "rss_1m") is False:
        from detectors.latency import LatencyConfig

        cfg = LatencyConfig()
        levels = 2 if cfg.host_level else 1
        sketch = levels * len(cfg.metrics) * cfg.n_buckets * 4
        out.append(
            f"- 1M series in 1.5 GiB: {fmt(1.5 * 2**30 / 1e6)} B per series for everything. "
            f"Each benchmark series is a new key at both latency levels, and their float32 "
            f"quantile sketches alone ({levels} levels x {len(cfg.metrics)} metrics x "
            f"{cfg.n_buckets} buckets x 4 B) take {fmt(sketch)} B of it; the run measured "
            f"{fmt(dig(mem, 'sizes', -1, 'marginal_bytes_per_series'), ' B')} per series "
            f"for all detectors."
        )
    return out


def _real_cells(g: dict[str, Any]) -> list[str]:
    fa = g.get("false_alerts_per_series_week") or {}
    return [
        fmt(g.get("nab_onset")),
        fmt(g.get("nab_rows_best")),
        fmt(g.get("nab_rows_at_0_5")),
        fmt(fa.get("outside_windows")),
        fmt(fa.get("series_without_anomalies")),
        fmt(g.get("incident_recall")),
        fmt(g.get("median_delay_s"), " s"),
    ]


def real_rows(b: dict[str, Any]) -> list[str]:
    """benchmarks.quality_real: NAB scores and false alerts per series-week, per folder."""
    q = dig(b, "quality_real", "result")
    if not q:
        return []
    lines = [
        "## Real labelled series (`benchmarks.quality_real`, nab_dev)",
        "",
        "Targets: NAB standard score >= 70 from alert onsets and from per-row scores; "
        "<= 0.5 false alerts per series-week outside windows and on series without anomalies.",
        "",
        "| Group | NAB onsets | NAB per-row (best thr) | NAB per-row @0.5 | FA/series-week "
        "outside windows | FA/series-week no-anomaly series | Recall | Median delay |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups = {"overall": q.get("overall", {}), **(q.get("per_folder") or {})}
    missed = dig(b, "quality_real_missed", "result")
    if missed:
        share = fmt(100.0 * float(missed.get("missed_share") or 0.0))
        name = f"overall, {share}% of rows missing ({missed.get('copies')} copies)"
        groups[name] = missed.get("overall", {})
    numbered = dig(b, "numbered_probe", "result")
    if numbered:
        groups["hourly probes numbered by row (`benchmarks.numbered_probe`)"] = numbered.get(
            "overall", {}
        )
    dense = dig(b, "numbered_probe_dense", "result")
    if dense:
        groups["the same, 8-20 anomalies a series (`--anomalies 8-20`)"] = dense.get("overall", {})
    for name, g in groups.items():
        lines.append(f"| {name} | " + " | ".join(_real_cells(g)) + " |")
    sr = dig(q, "overall", "stated_range")
    if sr:
        lines += [
            "",
            f"Ranges stated by firing alerts: {sr.get('with_range')} of {sr.get('alerts')} "
            f"alerts state one; width in units of the series' own range: median "
            f"{fmt(sr.get('median_width'))}, p90 {fmt(sr.get('p90_width'))}, "
            f"max {fmt(sr.get('max_width'))}.",
        ]
    return [*lines, ""]


def budget_rows(b: dict[str, Any]) -> list[str]:
    """benchmarks.budget_calibration: false alerts per series-week against the budget."""
    q = dig(b, "budget_calibration", "result")
    if not q:
        return []
    lines = [
        "## Alert budget on series with nothing wrong (`benchmarks.budget_calibration`)",
        "",
        f"Budget {fmt(q.get('budget_per_series_week'))} false alerts per series-week; "
        f"overall {fmt(q.get('overall_per_series_week'))} "
        f"({fmt(q.get('overall_vs_budget'))}x), worst family {fmt(q.get('worst_vs_budget'))}x. "
        f"Young stretch (before the warm-up ends, only far beyond a series' range pages): "
        f"{fmt(q.get('young_false_alerts'))} false alerts, "
        f"{fmt(q.get('young_per_series_week'))} per series-week "
        f"({fmt(q.get('young_vs_budget'))}x).",
        "",
        "| Family | Interval | Series-weeks scored | False alerts | Per series-week | vs budget "
        "| Young series-weeks | Young false alerts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in q.get("families") or []:
        cells = [
            r.get("family"),
            fmt(r.get("period_s"), " s"),
            fmt(r.get("series_weeks")),
            fmt(r.get("false_alerts")),
            fmt(r.get("per_series_week")),
            fmt(r.get("vs_budget"), "x"),
            fmt(r.get("young_series_weeks")),
            fmt(r.get("young_false_alerts")),
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return [*lines, ""]


# Figures measured by hand (before/after of a change, one command each) live below this
# line in RESULTS.md; a new run rewrites everything above it and keeps them.
HAND_MARK = "<!-- measured by hand: make bench keeps everything below this line -->"


def with_hand_section(rendered: str, previous: str | None) -> str:
    """``rendered`` plus the hand-measured part of the ``previous`` RESULTS.md, if any."""
    if not previous or HAND_MARK not in previous:
        return rendered
    return rendered.rstrip("\n") + "\n\n" + HAND_MARK + previous.split(HAND_MARK, 1)[1]


def render(run: dict[str, Any]) -> str:
    b = run["benchmarks"]
    m = run["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Latest `make bench` (`python -m benchmarks.run_all{' --quick' if run['quick'] else ''}`)"
        f": {run['date']}, {run['total_s']} s in all.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['platform']}; "
        f"1-min load average at start {m['load_avg_1m_at_start']} (the cores are shared, so "
        "compare ratios measured in the same run rather than absolute rates).",
        "",
    ]
    if run["quick"]:
        lines += ["**Quick (smoke) run: figures are not meaningful.**", ""]
    lines += ["## Targets", "", "| Figure | Value | Target | Verdict |", "|---|---|---|---|"]
    lines += [f"| {a} | {v} | {t} | {x} |" for a, v, t, x in target_rows(b)]
    for section in (real_rows(b), budget_rows(b)):
        if section:
            lines += ["", *section]
    missed = why_not(b)
    if missed:
        lines += ["", "## Why the missed targets are out of reach here", "", *missed]
    lines += ["", "## Details and ratios", "", "| Figure | Value |", "|---|---|"]
    lines += [f"| {a} | {v} |" for a, v in detail_rows(b)]
    lines += ["", "## How to read this", "", *NOTES]
    lines += ["", "## Commands", ""]
    for entry in b.values():
        took = entry.get("seconds")
        status = f"{took} s" if took is not None else "run on its own"
        if "error" in entry:
            status = f"error: {entry['error'][:300]}"
        lines.append(f"- `{entry['command']}` ({status})")
    lines.append("")
    return "\n".join(lines)
