from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from cathouse.platform.embedded import EmbeddedPostgres
from cathouse.platform.settings import Settings
from cathouse.services import SERVICES, create_platform_app, create_service_app

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
