"""Fixtures and factories for the catalog's tests: auth and catalog in one app over the test database."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.settings import Settings
from cathouse.services import SERVICES, create_app
from tests.auth.conftest import Account, signed_up
from tests.conftest import truncate_all, truncate_schemas
from tests.support import in_process

VERSION: dict[str, Any] = {
    "version": "1.0.0",
    "base_url": "https://api.points.example.com/v1",
    "credentials": {"type": "bearer", "field": "api_key"},
    "permissions": [
        {"name": "points:read", "description": "Read balances", "required": True},
        {"name": "points:write", "description": "Award points", "required": True},
        {"name": "points:export", "description": "Export the ledger", "required": False},
    ],
    "endpoints": [
        {"method": "GET", "path": "/balances/{user_id}", "permission": "points:read"},
        {"method": "POST", "path": "/awards", "permission": "points:write"},
        {"method": "GET", "path": "/export", "permission": "points:export"},
    ],
    "settings_schema": {
        "type": "object",
        "properties": {"api_key": {"type": "string", "writeOnly": True}, "team": {"type": "string"}},
        "required": ["api_key"],
    },
    "webhook_url": "https://hooks.points.example.com/cathouse",
    "rate_limit_per_minute": 600,
}


def version(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(VERSION)
    body.update(changes)
    return body


def cat_body(slug: str | None = None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "slug": slug or f"cat-{uuid.uuid4().hex[:10]}",
        "name": "Points Ledger",
        "summary": "Award, spend and transfer points with a full audit trail.",
        "description": "# Points\n\nA double-entry ledger of points.",
        "category": "points",
        "tags": ["points", "ledger"],
        "homepage": "https://points.example.com",
    }
    body.update(changes)
    return body


@dataclass
class People:
    developer: Account
    other_developer: Account
    admin: Account
    user: Account


@pytest.fixture(scope="module")
async def platform_client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Auth and catalog in one app, as ``cathouse up`` serves them; everything is wiped after the module."""
    app = create_app([SERVICES["auth"], SERVICES["catalog"]], settings=settings)
    try:
        async with in_process(app) as client:
            yield client
    finally:
        await truncate_all(engine)


@pytest.fixture
async def api(platform_client: httpx.AsyncClient, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """The platform over HTTP; each test starts from an empty catalog and outbox, the module's accounts stay."""
    yield platform_client
    await truncate_schemas(engine, ("catalog", "events"))


@pytest.fixture(scope="module")
async def people(platform_client: httpx.AsyncClient, engine: AsyncEngine) -> People:
    """Accounts for the whole module: hashing passwords for every test would dominate the run."""
    client = platform_client
    return People(
        developer=await signed_up(client, roles=("developer",), engine=engine),
        other_developer=await signed_up(client, roles=("developer",), engine=engine),
        admin=await signed_up(client, roles=("admin",), engine=engine),
        user=await signed_up(client),
    )


@pytest.fixture
def committed(engine: AsyncEngine) -> AsyncEngine:
    """Here the ``api`` fixture cleans up; this only names the engine for tests that read the database."""
    return engine


async def draft(api: httpx.AsyncClient, owner: Account, **changes: Any) -> dict[str, Any]:
    """A draft cat with one draft version."""
    created = await api.post("/api/v1/cats", json=cat_body(**changes), headers=owner.headers)
    assert created.status_code == 201, created.text
    slug = created.json()["slug"]
    added = await api.post(f"/api/v1/cats/{slug}/versions", json=VERSION, headers=owner.headers)
    assert added.status_code == 201, added.text
    body: dict[str, Any] = created.json()
    return body


async def published(api: httpx.AsyncClient, people: People, **changes: Any) -> dict[str, Any]:
    """A cat its developer created and submitted and an admin approved."""
    cat = await draft(api, people.developer, **changes)
    submitted = await api.post(f"/api/v1/cats/{cat['slug']}/submit", headers=people.developer.headers)
    assert submitted.status_code == 200, submitted.text
    approved = await api.post(f"/api/v1/cats/{cat['slug']}/approve", headers=people.admin.headers)
    assert approved.status_code == 200, approved.text
    body: dict[str, Any] = approved.json()
    return body
