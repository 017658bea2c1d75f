"""Prometheus metrics shared by every service of a process."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

REQUESTS = Counter(
    "cathouse_http_requests_total",
    "HTTP requests by route template and status.",
    ["service", "method", "route", "status"],
)
REQUEST_LATENCY = Histogram(
    "cathouse_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_PUBLISHED = Counter("cathouse_outbox_published_total", "Outbox events handed to their handlers.", ["event_type"])
OUTBOX_FAILURES = Counter(
    "cathouse_outbox_failures_total",
    "Outbox events whose handlers failed and will be retried.",
    ["event_type"],
)

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


BROKER_PUBLISHED = Counter(
    "cathouse_broker_published_total", "Outbox events the relay published to the broker.", ["broker"]
)
BROKER_PUBLISH_FAILURES = Counter(
    "cathouse_broker_publish_failures_total",
    "Publishes to the broker that failed; the events stay in the outbox and are tried again.",
    ["broker"],
)
CONSUMER_HANDLED = Counter(
    "cathouse_consumer_handled_total", "Broker messages a consumer group's handlers completed.", ["group"]
)
CONSUMER_FAILURES = Counter(
    "cathouse_consumer_failures_total",
    "Broker messages whose handlers failed, by consumer group; they are delivered again.",
    ["group"],
)
