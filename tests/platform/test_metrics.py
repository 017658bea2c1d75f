"""Where ``/metrics`` is served, and to whom: open in development, never to anonymous callers on
the public port in production, behind a bearer token or on a listener of its own."""

from __future__ import annotations

import socket
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from cathouse.platform.app import create_app
from cathouse.platform.db import schema_metadata
from cathouse.platform.service import Service
from cathouse.platform.settings import Environment, MetricsSettings, Settings
from tests.support import free_port

OpenClient = Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]
PLAIN = Service(name="catalog", metadata=schema_metadata("catalog"), migrations=Path("."))
TOKEN = "metrics-token-for-tests-0123456789abcdef"


def two_free_ports() -> int:
    """A port whose next one is free too."""
    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def configured(settings: Settings, *, env: Environment = Environment.PRODUCTION, **metrics: object) -> Settings:
    return settings.model_copy(update={"env": env, "metrics": MetricsSettings.model_validate(metrics)})


async def test_development_serves_metrics_on_the_public_port(settings: Settings, app_client: OpenClient) -> None:
    async with app_client(create_app([PLAIN], settings=configured(settings, env=Environment.DEVELOPMENT))) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert "cathouse_http_requests_total" in response.text


async def test_production_serves_no_metrics_on_the_public_port_by_default(
    settings: Settings, app_client: OpenClient
) -> None:
    async with app_client(create_app([PLAIN], settings=configured(settings))) as client:
        response = await client.get("/metrics")
    assert response.status_code == 404
    assert "cathouse_" not in response.text


async def test_with_a_token_the_public_port_serves_metrics_only_to_its_bearer(
    settings: Settings, app_client: OpenClient
) -> None:
    async with app_client(create_app([PLAIN], settings=configured(settings, token=SecretStr(TOKEN)))) as client:
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN[:-1]}x"})
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    for refused in (anonymous, wrong):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "cathouse_" not in refused.text
    assert right.status_code == 200
    assert "cathouse_http_requests_total" in right.text


async def test_a_metrics_port_serves_them_apart_from_the_public_one_until_the_app_stops(
    settings: Settings, app_client: OpenClient
) -> None:
    port = free_port()
    async with app_client(create_app([PLAIN], settings=configured(settings, port=port))) as client:
        assert (await client.get("/metrics")).status_code == 404
        await client.get("/api/v1/health")
        async with httpx.AsyncClient() as scraper:
            scraped = await scraper.get(f"http://127.0.0.1:{port}/metrics")
        assert scraped.status_code == 200
        assert 'route="/api/v1/health"' in scraped.text
    async with httpx.AsyncClient() as scraper:
        with pytest.raises(httpx.ConnectError):
            await scraper.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


async def test_workers_sharing_a_port_each_take_their_own_metrics_port(
    settings: Settings, app_client: OpenClient
) -> None:
    port = two_free_ports()
    workers = configured(settings, port=port).model_copy(update={"workers": 2})
    async with AsyncExitStack() as stack:
        for _ in range(2):
            await stack.enter_async_context(app_client(create_app([PLAIN], settings=workers)))
        scraper = await stack.enter_async_context(httpx.AsyncClient())
        for taken in (port, port + 1):
            assert (await scraper.get(f"http://127.0.0.1:{taken}/metrics", timeout=5)).status_code == 200
        # A third process of two workers finds no port left: it says so and does not start.
        with pytest.raises(OSError, match="CATHOUSE_METRICS__PORT"):
            await stack.enter_async_context(app_client(create_app([PLAIN], settings=workers)))
