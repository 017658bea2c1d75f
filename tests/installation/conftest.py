"""Fixtures for the installation service: auth, catalog and installation in one app with the relay
and its workers running, and a real HTTP server standing in for a cat."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cathouse.platform.settings import Settings
from cathouse.services import SERVICES, create_app
from tests.auth.conftest import Account, signed_up
from tests.catalog.conftest import VERSION, cat_body
from tests.conftest import truncate_all, truncate_schemas
from tests.support import free_port, in_process, serving

KEYRING_TABLES = ("installation.master_key_versions",)
FAST_WEBHOOKS = {
    "webhook_backoff": 0.05,
    "webhook_max_backoff": 0.2,
    "webhook_max_attempts": 3,
    "webhook_poll_interval": 0.05,
    "webhook_timeout": 2.0,
    "webhook_allow_private": True,
}


@dataclass
class People:
    publisher: Account
    admin: Account
    owner: Account
    stranger: Account


@dataclass
class FakeCat:
    """A cat's API on a real port: records what it receives, answers what it is told to."""

    port: int
    status: int = 200
    # Answers to give first, one per request, before ``status`` again.
    answers: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def platform_settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """The running platform's settings: the provisioner reads them at every send."""
    return make_settings(
        database_url,
        catalog={"allow_http": True},
        installation=FAST_WEBHOOKS,
        events={"poll_interval": 0.05},
    )


@pytest.fixture(scope="module")
async def platform(engine: AsyncEngine, platform_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    settings = platform_settings
    app = create_app(
        [SERVICES["auth"], SERVICES["catalog"], SERVICES["installation"]], settings=settings, run_relay=True
    )
    try:
        async with in_process(app) as client:
            yield client
    finally:
        await truncate_all(engine)


@pytest.fixture
async def api(platform: httpx.AsyncClient, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    yield platform
    # The running app's keyring holds the master-key versions, as a live platform's does.
    await truncate_schemas(engine, ("installation", "catalog", "events"), keep=KEYRING_TABLES)


@pytest.fixture(scope="module")
async def people(platform: httpx.AsyncClient, engine: AsyncEngine) -> People:
    return People(
        publisher=await signed_up(platform, roles=("developer",), engine=engine),
        admin=await signed_up(platform, roles=("admin",), engine=engine),
        owner=await signed_up(platform),
        stranger=await signed_up(platform),
    )


@pytest.fixture
async def fake_cat() -> AsyncIterator[FakeCat]:
    cat = FakeCat(port=free_port())

    async def hook(request: Request) -> Response:
        cat.received.append((dict(request.headers), await request.body()))
        status = cat.answers.pop(0) if cat.answers else cat.status
        return JSONResponse({"ok": status < 300}, status_code=status)

    app = Starlette(routes=[Route("/hooks", hook, methods=["POST"])])
    async with serving(app, cat.port):
        yield cat


def version(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(VERSION)
    body.update(changes)
    return body


async def publish(api: httpx.AsyncClient, people: People, *, webhook_url: str | None = None, **changes: Any) -> str:
    """A published cat; returns its slug. Its version has no webhook unless one is given."""
    created = await api.post("/api/v1/cats", json=cat_body(), headers=people.publisher.headers)
    assert created.status_code == 201, created.text
    slug: str = created.json()["slug"]
    spec = version(webhook_url=webhook_url, **changes)
    added = await api.post(f"/api/v1/cats/{slug}/versions", json=spec, headers=people.publisher.headers)
    assert added.status_code == 201, added.text
    await api.post(f"/api/v1/cats/{slug}/submit", headers=people.publisher.headers)
    approved = await api.post(f"/api/v1/cats/{slug}/approve", headers=people.admin.headers)
    assert approved.status_code == 200, approved.text
    return slug


def install_body(slug: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cat": slug,
        "name": "Main",
        "permissions": ["points:read", "points:write"],
        "settings": {"team": "blue"},
        "secrets": {"api_key": "sk-live-0123456789"},
    }
    body.update(changes)
    return body


async def wait_for_status(
    api: httpx.AsyncClient, account: Account, installation_id: str, status: str, within: float = 10.0
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        body: dict[str, Any] = (
            await api.get(f"/api/v1/installations/{installation_id}", headers=account.headers)
        ).json()
        if body["status"] == status:
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still {body['status']} ({body.get('status_reason')}), not {status}")
        await asyncio.sleep(0.05)
