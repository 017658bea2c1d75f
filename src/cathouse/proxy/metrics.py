"""The proxy's metrics: calls, latency, refusals and upstream errors by cat and decision.

Label children are looked up once per (cat, decision) and kept: ``labels()`` hashes its
arguments under a lock on every call, which the hot path need not pay.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CALLS = Counter("cathouse_proxy_requests_total", "Calls through the proxy by cat and decision.", ["cat", "decision"])
LATENCY = Histogram(
    "cathouse_proxy_request_duration_seconds",
    "Time the proxy spent on a call, the cat's answer included, by cat.",
    ["cat"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPSTREAM_ERRORS = Counter(
    "cathouse_proxy_upstream_errors_total", "Cat answers of 5xx, and cats that could not be reached, by cat.", ["cat"]
)
_calls: dict[tuple[str, str], Counter] = {}
_latency: dict[str, Histogram] = {}
_upstream: dict[str, Counter] = {}


def observe(cat: str, decision: str, seconds: float, upstream_status: int | None) -> None:
    key = (cat, decision)
    calls = _calls.get(key)
    if calls is None:
        calls = _calls[key] = CALLS.labels(cat, decision)
    calls.inc()
    latency = _latency.get(cat)
    if latency is None:
        latency = _latency[cat] = LATENCY.labels(cat)
    latency.observe(seconds)
    if decision in ("upstream_error", "upstream_timeout") or (upstream_status or 0) >= 500:
        upstream = _upstream.get(cat)
        if upstream is None:
            upstream = _upstream[cat] = UPSTREAM_ERRORS.labels(cat)
        upstream.inc()
