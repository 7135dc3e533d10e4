"""Scrape a Prometheus ``/metrics`` endpoint (vLLM's, dcgm-exporter's, or any) into events.

Known exporters are mapped first (``connectors.scrape_maps``; ``mapping="raw"``
turns that off): dcgm-exporter's GPUs become ``GpuSample``s for the ``gpu_health``
detector, vLLM/SGLang/TGI families become canonical ``llm_*`` series labelled by
model and instance. What is left, and everything from other exporters, is windowed
generically into ``MetricSample``s.

Between two scrapes:

- gauges are published as they are (``vllm:num_requests_running``);
- counters become per-second rates, ``<sample name>:rate``; a counter that went
  down was reset (a restart), and its whole current value is the increase, as
  Prometheus's ``rate()`` assumes;
- histograms become windowed percentiles ``<family>:p50`` / ``:p90`` / ``:p99``
  from the bucket deltas, interpolated linearly within a bucket exactly as
  Prometheus's ``histogram_quantile`` does, plus ``<family>:rate`` (observations
  per second) and ``<family>:mean``. No observations in the window: no percentiles.

The first scrape only primes the window (gauges aside). Every sample carries an
``instance`` label (host:port of the URL) unless the exposition already has one.
"""

from __future__ import annotations

import math
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

from connectors.exposition import (
    Histogram,
    LabelSet,
    Snapshot,
    histogram_quantile,
    parse_exposition,
)
from connectors.kafka import KeyedProducer, PublisherStats
from connectors.scrape_maps import engines
from connectors.scrape_maps.dcgm import DcgmMapper
from schemas.keys import key_of
from schemas.models import GpuSample, MetricSample

Scraped = MetricSample | GpuSample

DEFAULT_METRICS_TOPIC = "llmwatch.metrics"
DEFAULT_GPU_TOPIC = "llmwatch.gpu"
# 0.95: the quantile llmwatch's dashboards and runbooks speak of.
DEFAULT_QUANTILES = (0.5, 0.9, 0.95, 0.99)
MAPPINGS = ("auto", "raw")
MAX_LABELS = 32  # MetricSample's bound


def _increase(cur: float, prev: float) -> float:
    # A counter that went down was reset; everything it holds now is new.
    return cur if cur < prev else cur - prev


class ScrapeWindow:
    """Turns consecutive snapshots into ``MetricSample``s (rates, percentiles, gauges)."""

    def __init__(
        self,
        quantiles: Iterable[float] = DEFAULT_QUANTILES,
        extra_labels: Mapping[str, str] | None = None,
    ) -> None:
        self.quantiles = tuple(quantiles)
        for q in self.quantiles:
            if not 0.0 < q < 1.0:
                raise ValueError(f"quantiles: {q} is not between 0 and 1")
        self.extra_labels = dict(extra_labels or {})
        self.resets = 0
        self._prev: Snapshot | None = None
        self._prev_ts: float | None = None

    def update(self, snap: Snapshot, ts: float) -> list[MetricSample]:
        when = datetime.fromtimestamp(ts, UTC)
        out = [self._sample(when, name, labels, v) for (name, labels), v in snap.gauges.items()]
        prev, prev_ts = self._prev, self._prev_ts
        if prev is not None and prev_ts is not None and ts > prev_ts:
            dt = ts - prev_ts
            out.extend(self._counter_rates(snap, prev, dt, when))
            out.extend(self._histogram_windows(snap, prev, dt, when))
        if prev_ts is None or ts > prev_ts:
            self._prev, self._prev_ts = snap, ts
        return [s for s in out if s is not None]

    def _counter_rates(
        self, snap: Snapshot, prev: Snapshot, dt: float, when: datetime
    ) -> Iterable[MetricSample | None]:
        for sid, cur in snap.counters.items():
            before = prev.counters.get(sid)
            if before is None:
                continue  # a new series: its rate is known from the next scrape
            if cur < before:
                self.resets += 1
            yield self._sample(when, f"{sid[0]}:rate", sid[1], _increase(cur, before) / dt)

    def _histogram_windows(
        self, snap: Snapshot, prev: Snapshot, dt: float, when: datetime
    ) -> Iterable[MetricSample | None]:
        for (family, labels), cur in snap.histograms.items():
            before = prev.histograms.get((family, labels))
            if before is None:
                continue
            reset = cur.count < before.count or any(
                cur.buckets.get(le, 0.0) < c for le, c in before.buckets.items()
            )
            if reset:
                self.resets += 1
                before = Histogram()
            n = cur.count - before.count
            yield self._sample(when, f"{family}:rate", labels, n / dt)
            if n <= 0:
                continue
            yield self._sample(when, f"{family}:mean", labels, (cur.sum - before.sum) / n)
            deltas = [(le, c - before.buckets.get(le, 0.0)) for le, c in cur.buckets.items()]
            for q in self.quantiles:
                value = histogram_quantile(q, deltas)
                yield self._sample(when, f"{family}:p{_pct(q)}", labels, value)

    def _sample(
        self, when: datetime, name: str, labels: LabelSet, value: float
    ) -> MetricSample | None:
        if not math.isfinite(value):
            return None
        merged = {**self.extra_labels, **dict(labels)}
        if len(merged) > MAX_LABELS:
            merged = dict(sorted(merged.items())[:MAX_LABELS])
        return MetricSample(ts=when, name=name, labels=merged, value=value)


def _pct(q: float) -> str:
    # 0.5 -> "50", 0.99 -> "99", 0.999 -> "99_9": usable in a metric name.
    return f"{q * 100:g}".replace(".", "_")


def fetch(url: str, timeout_s: float = 10.0) -> str:
    """GET the exposition text; raises ``OSError`` (URLError, HTTPError, timeouts) on failure."""
    req = urllib.request.Request(url, headers={"Accept": "text/plain;version=0.0.4"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        body: bytes = resp.read()
        charset = resp.headers.get_content_charset() or "utf-8"
    return body.decode(charset, errors="replace")


class MetricPublisher:
    """Non-blocking publisher of scraped events: metrics keyed by series, GPUs by host."""

    def __init__(
        self,
        client: Mapping[str, str],
        topic: str = DEFAULT_METRICS_TOPIC,
        gpu_topic: str = DEFAULT_GPU_TOPIC,
    ) -> None:
        self.topic = topic
        self.gpu_topic = gpu_topic
        self._producer = KeyedProducer(client, {"linger.ms": 50})

    def __call__(self, sample: Scraped) -> bool:
        topic = self.gpu_topic if isinstance(sample, GpuSample) else self.topic
        return self._producer.send(topic, key_of(sample), sample)

    def flush(self, timeout_s: float = 10.0) -> int:
        return self._producer.flush(timeout_s)

    def close(self, timeout_s: float = 10.0) -> int:
        return self._producer.close(timeout_s)

    def stats(self) -> PublisherStats:
        return self._producer.stats()


class Scraper:
    """Fetch, parse, window, publish; ``scrape_once`` is one tick, ``run`` the loop."""

    def __init__(
        self,
        url: str,
        publish: Callable[[Scraped], object],
        *,
        prefixes: Sequence[str] = (),
        quantiles: Iterable[float] = DEFAULT_QUANTILES,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 10.0,
        mapping: str = "auto",
        model: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"url: expected http(s)://host:port/metrics, got {url!r}")
        if mapping not in MAPPINGS:
            raise ValueError(f"mapping: expected one of {MAPPINGS}, got {mapping!r}")
        self.mapping = mapping
        self.model = model
        self.dcgm = DcgmMapper(parts.netloc)
        self.url = url
        self.publish = publish
        self.prefixes = tuple(prefixes)
        self.window = ScrapeWindow(quantiles, {"instance": parts.netloc})
        self.clock = clock
        self.timeout_s = timeout_s
        self.failures = 0
        self.last_error: str | None = None
        self.published = 0

    def scrape_once(self) -> list[Scraped]:
        """One scrape; a failed fetch is counted and yields nothing (the window keeps its base)."""
        try:
            text = fetch(self.url, self.timeout_s)
        except (OSError, ValueError) as exc:
            self.failures += 1
            self.last_error = str(exc)
            return []
        samples = self.convert(parse_exposition(text, self.prefixes), self.clock())
        for s in samples:
            self.publish(s)
        self.published += len(samples)
        return samples

    def convert(self, snap: Snapshot, ts: float) -> list[Scraped]:
        """One parsed scrape -> events: mapped exporters first, the rest windowed generically."""
        gpus: list[GpuSample] = []
        if self.mapping == "auto":
            if self.dcgm.knows(snap):
                gpus, snap = self.dcgm.split(snap, ts)
            if engines.knows(snap):
                snap = engines.canonical(snap, self.model)
        return [*gpus, *self.window.update(snap, ts)]

    def run(
        self,
        interval_s: float,
        duration_s: float | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        if interval_s <= 0:
            raise ValueError("interval: must be positive")
        halt = stop if stop is not None else threading.Event()
        end = None if duration_s is None else time.monotonic() + duration_s
        next_tick = time.monotonic()
        while not halt.is_set():
            if end is not None and time.monotonic() >= end:
                break
            self.scrape_once()
            next_tick = max(next_tick + interval_s, time.monotonic())
            target = next_tick if end is None else min(next_tick, end)
            halt.wait(max(0.0, target - time.monotonic()))
        return self.published
