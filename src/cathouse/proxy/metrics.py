"""The proxy's metrics: calls, latency, refusals and upstream errors by cat and decision.

Every call through the proxy is counted, so the counting is plain integers in dicts, updated
on the event loop; the figures become Prometheus metric families only when ``/metrics`` is
read. prometheus-client's own counters take a lock per increment and its histogram one per
bucket it touches, which costs a call through the proxy several times what this does.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_UPSTREAM_FAILURES = frozenset({"upstream_error", "upstream_timeout"})


class _Latency:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0


class ProxyMetrics(Collector):
    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], int] = {}
        self.latency: dict[str, _Latency] = {}
        self.upstream_errors: dict[str, int] = {}

    def observe(self, cat: str, decision: str, seconds: float, upstream_status: int | None) -> None:
        key = (cat, decision)
        calls = self.calls
        calls[key] = calls.get(key, 0) + 1
        latency = self.latency.get(cat)
        if latency is None:
            latency = self.latency[cat] = _Latency()
        latency.counts[bisect_left(BUCKETS, seconds)] += 1  # a bucket counts values up to its bound
        latency.total += seconds
        if decision in _UPSTREAM_FAILURES or (upstream_status is not None and upstream_status >= 500):
            self.upstream_errors[cat] = self.upstream_errors.get(cat, 0) + 1

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "cathouse_proxy_requests", "Calls through the proxy by cat and decision.", labels=["cat", "decision"]
        )
        for (cat, decision), count in list(self.calls.items()):
            calls.add_metric([cat, decision], count)
        yield calls
        latency = HistogramMetricFamily(
            "cathouse_proxy_request_duration_seconds",
            "Time the proxy spent on a call, the cat's answer included, by cat.",
            labels=["cat"],
        )
        bounds = [*(repr(b) for b in BUCKETS), "+Inf"]
        for cat, observed in list(self.latency.items()):
            running, cumulative = 0, []
            for bound, count in zip(bounds, list(observed.counts), strict=True):
                running += count
                cumulative.append((bound, running))
            latency.add_metric([cat], cumulative, observed.total)
        yield latency
        errors = CounterMetricFamily(
            "cathouse_proxy_upstream_errors",
            "Cat answers of 5xx, and cats that could not be reached, by cat.",
            labels=["cat"],
        )
        for cat, count in list(self.upstream_errors.items()):
            errors.add_metric([cat], count)
        yield errors


METRICS = ProxyMetrics()
REGISTRY.register(METRICS)
observe = METRICS.observe
