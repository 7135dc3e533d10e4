"""Known exporters' metric families mapped to llmwatch's typed events (see ``llmwatch scrape``).

- :mod:`connectors.scrape_maps.dcgm`: NVIDIA dcgm-exporter -> ``GpuSample`` (the
  ``gpu_health`` detector's input), so a fleet that already runs dcgm-exporter needs
  no llmwatch GPU agent.
- :mod:`connectors.scrape_maps.engines`: vLLM, SGLang and TGI -> canonical serving
  series (``llm_e2e_latency_seconds``, ``llm_ttft_seconds``, ``llm_queue_depth``, ...)
  labelled by ``model`` and ``instance``, so one baseline is kept per model and
  instance whichever engine serves it.

Families a map does not know pass through as generic ``MetricSample``s: nothing
scraped is dropped.
"""
