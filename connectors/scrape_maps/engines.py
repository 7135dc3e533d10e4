"""vLLM, SGLang and TGI metric families renamed to one set of canonical serving series.

A fleet mixes engines; an operator asks "is this model's TTFT on this instance
worse than usual", not which engine's histogram name holds it. Each known family
is renamed, its model label normalised to ``model`` (vLLM and SGLang call it
``model_name``; TGI serves one model and has no label, so ``--model`` names it,
else ``unknown``), and ``server`` records the engine. ``ScrapeWindow`` then turns
the histograms into windowed quantiles as for any family, so the ``series``
detector keeps one baseline per (canonical name, model, instance):

=============================  ================================================
canonical                      from
=============================  ================================================
llm_e2e_latency_seconds        vllm:e2e_request_latency_seconds,
                               sglang:e2e_request_latency_seconds,
                               tgi_request_duration
llm_ttft_seconds               vllm:/sglang: time_to_first_token_seconds
llm_tpot_seconds               vllm:/sglang: inter_token_latency_seconds, else
                               time_per_output_token_seconds;
                               tgi_request_mean_time_per_token_duration
llm_queue_time_seconds         vllm:request_queue_time_seconds,
                               sglang:queue_time_seconds, tgi_request_queue_duration
llm_queue_depth                vllm:num_requests_waiting, sglang:num_queue_reqs,
                               tgi_queue_size
llm_running_requests           vllm:num_requests_running, sglang:num_running_reqs,
                               tgi_batch_current_size
llm_kv_cache_usage_ratio       vllm:kv_cache_usage_perc (older vllm:gpu_cache_usage_perc),
                               sglang:token_usage
=============================  ================================================

When two source families land on one canonical series (vLLM exports both
inter-token names in some versions), the first in the table's order wins and the
other passes through under its own name. Everything else passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from connectors.exposition import LabelSet, SeriesId, Snapshot

ENGINES = {"vllm:": "vllm", "sglang:": "sglang", "tgi_": "tgi"}

# Order matters: earlier sources win a clash on one canonical series.
HISTOGRAMS: dict[str, str] = {
    "vllm:e2e_request_latency_seconds": "llm_e2e_latency_seconds",
    "sglang:e2e_request_latency_seconds": "llm_e2e_latency_seconds",
    "tgi_request_duration": "llm_e2e_latency_seconds",
    "vllm:time_to_first_token_seconds": "llm_ttft_seconds",
    "sglang:time_to_first_token_seconds": "llm_ttft_seconds",
    "vllm:inter_token_latency_seconds": "llm_tpot_seconds",
    "vllm:time_per_output_token_seconds": "llm_tpot_seconds",
    "sglang:inter_token_latency_seconds": "llm_tpot_seconds",
    "sglang:time_per_output_token_seconds": "llm_tpot_seconds",
    "tgi_request_mean_time_per_token_duration": "llm_tpot_seconds",
    "vllm:request_queue_time_seconds": "llm_queue_time_seconds",
    "sglang:queue_time_seconds": "llm_queue_time_seconds",
    "tgi_request_queue_duration": "llm_queue_time_seconds",
}
GAUGES: dict[str, str] = {
    "vllm:num_requests_waiting": "llm_queue_depth",
    "sglang:num_queue_reqs": "llm_queue_depth",
    "tgi_queue_size": "llm_queue_depth",
    "vllm:num_requests_running": "llm_running_requests",
    "sglang:num_running_reqs": "llm_running_requests",
    "tgi_batch_current_size": "llm_running_requests",
    "vllm:kv_cache_usage_perc": "llm_kv_cache_usage_ratio",
    "vllm:gpu_cache_usage_perc": "llm_kv_cache_usage_ratio",
    "sglang:token_usage": "llm_kv_cache_usage_ratio",
}
_RANK = {name: i for i, name in enumerate([*HISTOGRAMS, *GAUGES])}

V = TypeVar("V")


def engine_of(name: str) -> str | None:
    return next((e for p, e in ENGINES.items() if name.startswith(p)), None)


def knows(snap: Snapshot) -> bool:
    return any(engine_of(name) for name, _ in (*snap.gauges, *snap.histograms, *snap.counters))


def canonical(snap: Snapshot, default_model: str | None = None) -> Snapshot:
    """The snapshot with known engine families renamed; the rest as it was."""
    return Snapshot(
        gauges=_rename(snap.gauges, GAUGES, default_model),
        counters=dict(snap.counters),
        histograms=_rename(snap.histograms, HISTOGRAMS, default_model),
    )


def _rename(
    series: Mapping[SeriesId, V], table: Mapping[str, str], default_model: str | None
) -> dict[SeriesId, V]:
    out: dict[SeriesId, V] = {}
    # Sources in the table's order, so the preferred one claims a canonical series first.
    ordered = sorted(series.items(), key=lambda kv: _RANK.get(kv[0][0], len(_RANK)))
    for (name, labels), value in ordered:
        target = table.get(name)
        new: SeriesId = (name, labels)
        if target is not None:
            candidate = (target, _labels(labels, engine_of(name) or "", default_model))
            if candidate not in out:
                new = candidate
        out[new] = value
    return out


def _labels(labels: LabelSet, server: str, default_model: str | None) -> LabelSet:
    d = dict(labels)
    model = d.pop("model_name", None) or d.get("model") or default_model or "unknown"
    d["model"] = model
    d["server"] = server
    return tuple(sorted(d.items()))
