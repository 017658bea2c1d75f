from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cathouse.platform.embedded import EmbeddedPostgres
from cathouse.platform.settings import Settings
from cathouse.services import SERVICES, create_platform_app, create_service_app
from tests.platform.security.test_tokens import public_jwk
from tests.support import free_port, serving

OpenClient = Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.mark.parametrize("name", list(SERVICES))
async def test_each_service_answers_liveness_and_readiness_with_its_name(
    service_client: Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]], name: str
) -> None:
    async with service_client(name) as client:
        live = await client.get("/api/v1/health")
        ready = await client.get("/api/v1/health/db")
    assert live.status_code == 200
    assert live.json()["service"] == name
    assert ready.status_code == 200
    assert ready.json()["databases"] == {name: "ok"}


async def test_readiness_checks_every_service_database_of_the_process(
    settings: Settings, app_client: OpenClient
) -> None:
    async with app_client(create_platform_app(settings)) as client:
        response = await client.get("/api/v1/health/db")
    assert response.status_code == 200
    assert response.json()["databases"] == dict.fromkeys(["auth", "catalog", "installation", "proxy", "activity"], "ok")


async def test_readiness_is_503_while_the_database_is_down_and_recovers_without_restart(
    tmp_path: Path, make_settings: Callable[..., Settings], app_client: OpenClient
) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    url = await asyncio.to_thread(server.start)
    settings = make_settings(url, db_connect_timeout=2.0)
    try:
        async with app_client(create_service_app("catalog", settings)) as client:
            assert (await client.get("/api/v1/health/db")).status_code == 200

            await asyncio.to_thread(server.stop)
            down = await client.get("/api/v1/health/db")
            assert down.status_code == 503
            assert down.headers["content-type"] == "application/problem+json"
            assert "catalog database is unreachable" in down.json()["detail"]
            assert str(tmp_path) not in down.text, "no paths or hosts to anonymous callers"
            assert (await client.get("/api/v1/health")).status_code == 200, "liveness does not depend on the DB"

            await asyncio.to_thread(server.start)
            back = await client.get("/api/v1/health/db")
            assert back.status_code == 200
    finally:
        await asyncio.to_thread(server.stop)


async def test_readiness_of_auth_counts_its_own_keys(
    service_client: Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]],
) -> None:
    async with service_client("auth") as client:
        ready = await client.get("/api/v1/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "databases": {"auth": "ok"}, "jwks_url": None}


async def test_readiness_names_the_jwks_it_cannot_fetch_and_recovers_once_it_answers(
    database_url: str, make_settings: Callable[..., Settings], app_client: OpenClient
) -> None:
    port = free_port()
    jwks_url = f"http://127.0.0.1:{port}/api/v1/auth/.well-known/jwks.json"
    settings = make_settings(database_url, tokens={"jwks_url": jwks_url})

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse({"keys": [public_jwk("k1")]})

    async with app_client(create_service_app("catalog", settings)) as client:
        down = await client.get("/api/v1/health/ready")
        assert down.status_code == 503
        assert down.headers["content-type"] == "application/problem+json"
        problem = down.json()
        assert problem["jwks_url"] == jwks_url
        assert f"Cannot fetch the keys that verify tokens from {jwks_url}: could not connect" in problem["detail"]
        # The process is alive and its database fine: only readiness says what is wrong.
        assert (await client.get("/api/v1/health")).status_code == 200
        assert (await client.get("/api/v1/health/db")).status_code == 200

        async with serving(Starlette(routes=[Route("/api/v1/auth/.well-known/jwks.json", jwks)]), port):
            ready = await client.get("/api/v1/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "databases": {"catalog": "ok"}, "jwks_url": jwks_url}
