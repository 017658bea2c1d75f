"""Prometheus metrics shared by every service of a process, and where they are served.

``/metrics`` says how busy each route is, which cats fail and how far behind the consumers are:
nothing for anonymous callers on the public port. In development and tests the app's own port
serves it to anyone; in production only with ``CATHOUSE_METRICS__TOKEN`` (as a bearer token),
or on a listener of its own (``CATHOUSE_METRICS__PORT``, loopback by default). See
``MetricsSettings``.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest, start_http_server

from cathouse.platform.errors import Unauthorized
from cathouse.platform.settings import Settings

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

_bearer = HTTPBearer(auto_error=False)


class MetricsTokenRequired(Unauthorized):
    def __init__(self) -> None:
        super().__init__("Metrics are read with the metrics bearer token (CATHOUSE_METRICS__TOKEN).")
        self.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'


def public_router(settings: Settings) -> APIRouter:
    """``/metrics`` on the app's own port: open, or behind the metrics token when one is set."""
    router = APIRouter()
    token = settings.metrics.token
    expected = token.get_secret_value().encode() if token is not None else None

    async def authorized(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        if expected is None:
            return
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, expected):
            raise MetricsTokenRequired()

    @router.get("/metrics", include_in_schema=False, dependencies=[Depends(authorized)])
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


@asynccontextmanager
async def listener(settings: Settings) -> AsyncIterator[int | None]:
    """With ``metrics.port`` set, serve ``/metrics`` there for as long as this lasts; yields the port.

    Processes of ``cathouse serve --workers N`` share the app's port but cannot share this one:
    each takes the first free port of ``port … port+N-1`` (and says which), so every worker's
    counts can be scraped.
    """
    section = settings.metrics
    if section.port is None:
        if not settings.metrics_on_public_port:
            logger.warning("metrics are not served: set CATHOUSE_METRICS__PORT or CATHOUSE_METRICS__TOKEN")
        yield None
        return
    candidates = range(section.port, min(section.port + settings.workers, 65536))
    for port in candidates:
        try:
            server, thread = start_http_server(port, addr=section.host)
            break
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or port == candidates[-1]:
                raise OSError(
                    exc.errno, f"cannot serve metrics on {section.host}:{port} (CATHOUSE_METRICS__PORT): {exc.strerror}"
                ) from exc
    logger.info("metrics listening", address=f"{section.host}:{port}")
    try:
        yield port
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join(timeout=5)


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
