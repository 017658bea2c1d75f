"""Revocations applied by a service that is not auth: its own table, fed from ``auth.revocations``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.settings import Settings
from cathouse.services import create_service_app
from tests.auth.conftest import signed_up
from tests.support import free_port, serving

OpenClient = Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]


@dataclass
class Apart:
    auth: httpx.AsyncClient
    installations: httpx.AsyncClient


@pytest.fixture
async def apart(
    committed: AsyncEngine,
    settings: Settings,
    make_settings: Callable[..., Settings],
    database_url: str,
    app_client: OpenClient,
) -> AsyncIterator[Apart]:
    """The auth service on a loopback port, and the installation service in another app that
    fetches auth's keys from there, as two processes would."""
    app = create_service_app("auth", settings)
    port = free_port()
    async with app.router.lifespan_context(app), serving(app, port):
        jwks = f"http://127.0.0.1:{port}/api/v1/auth/.well-known/jwks.json"
        apart = make_settings(database_url, tokens={"jwks_url": jwks})
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as auth,
            app_client(create_service_app("installation", apart)) as installations,
        ):
            yield Apart(auth, installations)


async def status_within(client: httpx.AsyncClient, headers: dict[str, str], expected: int, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if (await client.get("/api/v1/installations", headers=headers)).status_code == expected:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"not {expected} within {seconds} s")


async def test_a_disabled_account_is_refused_by_another_service_and_enabled_again_signs_in_anew(
    apart: Apart, committed: AsyncEngine
) -> None:
    auth, installations = apart.auth, apart.installations
    admin = await signed_up(auth, roles=("admin",), engine=committed)
    account = await signed_up(auth)
    if True:
        assert (await installations.get("/api/v1/installations", headers=account.headers)).status_code == 200
        disabled = await auth.post(f"/api/v1/users/{account.id}/disable", headers=admin.headers)
        assert disabled.status_code == 200
        await status_within(installations, account.headers, 401, 5)
        refused = await installations.get("/api/v1/installations", headers=account.headers)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["detail"] == "This account is disabled."

        assert (await auth.post(f"/api/v1/users/{account.id}/enable", headers=admin.headers)).status_code == 200
        await asyncio.sleep(1.5)
        still = await installations.get("/api/v1/installations", headers=account.headers)
        assert still.status_code == 401, "a token issued before the account was disabled stays void"
        assert "revoked" in still.json()["detail"]
