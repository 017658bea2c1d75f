"""An OAuth 2.0 cat end to end: the test provider in a process of its own, ``cathouse up`` in
another, and a second proxy process (``cathouse serve proxy``) sharing the database; one such
deployment serves the whole package.

The provider issues access tokens that live 5 seconds and rotates refresh tokens; its ``/api``
is the cat's API, and answers only its own live tokens.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.auth.conftest import Account, signed_up
from tests.catalog.conftest import cat_body, version
from tests.conftest import truncate_all
from tests.installation.oauth.support import Provider, aconsent, running_provider
from tests.support import cathouse_env, free_ports, start_cathouse, terminate_and_wait, wait_healthy

ACCESS_TTL = 5.0


@dataclass(frozen=True)
class Deployment:
    platform: str  # cathouse up: every service, the relay and the workers
    proxy: str  # cathouse serve proxy: a second process refreshing the same tokens
    logs: tuple[Path, ...]

    @property
    def callback(self) -> str:
        return f"{self.platform}/api/v1/oauth/callback"


@dataclass
class People:
    publisher: Account
    admin: Account
    owner: Account
    stranger: Account


@pytest.fixture(scope="package")
def provider() -> Iterator[Provider]:
    with running_provider(access_ttl=ACCESS_TTL) as running:
        yield running


@pytest.fixture(scope="package")
def deployment(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    data_dir = tmp_path_factory.mktemp("oauth")
    platform_port, proxy_port = free_ports(2)
    platform = f"http://127.0.0.1:{platform_port}"
    env = cathouse_env(
        data_dir,
        {
            "CATHOUSE_LOG_LEVEL": "INFO",
            "CATHOUSE_PUBLIC_URL": platform,
            "CATHOUSE_CATALOG__ALLOW_HTTP": "true",
            "CATHOUSE_PROXY__ALLOW_HOSTS": '["127.0.0.0/8"]',
            "CATHOUSE_PROXY__CONTEXT_CACHE_TTL": "1",
            "CATHOUSE_PROXY__AUDIT_FLUSH_INTERVAL": "0.05",
            "CATHOUSE_INSTALLATION__OAUTH_ALLOW_PRIVATE": "true",
            "CATHOUSE_INSTALLATION__WEBHOOK_POLL_INTERVAL": "0.05",
            "CATHOUSE_INSTALLATION__WEBHOOK_ALLOW_PRIVATE": "true",
            "CATHOUSE_AUTH__REGISTER_RATE": "1000/minute",
            "CATHOUSE_AUTH__LOGIN_RATE": "1000/minute",
            "CATHOUSE_EVENTS__POLL_INTERVAL": "0.05",
            "CATHOUSE_TOKENS__JWKS_URL": f"{platform}/api/v1/auth/.well-known/jwks.json",
        },
        database_url=database_url,
    )
    logs = (data_dir / "up.log", data_dir / "proxy.log")
    up = start_cathouse(["up", "--port", str(platform_port)], env, logs[0])
    procs: list[subprocess.Popen[bytes]] = [up]
    try:
        wait_healthy(f"{platform}/api/v1/health", up, logs[0])
        second = start_cathouse(["serve", "proxy", "--port", str(proxy_port)], env, logs[1])
        procs.append(second)
        wait_healthy(f"http://127.0.0.1:{proxy_port}/api/v1/health", second, logs[1])
        yield Deployment(platform, f"http://127.0.0.1:{proxy_port}", logs)
    finally:
        for proc in procs:
            terminate_and_wait(proc)


@pytest.fixture(scope="package")
async def api(deployment: Deployment, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    try:
        async with httpx.AsyncClient(base_url=deployment.platform, timeout=30) as client:
            yield client
    finally:
        await truncate_all(engine)


@pytest.fixture(scope="package")
async def people(api: httpx.AsyncClient, engine: AsyncEngine) -> People:
    return People(
        publisher=await signed_up(api, roles=("developer",), engine=engine),
        admin=await signed_up(api, roles=("admin",), engine=engine),
        owner=await signed_up(api),
        stranger=await signed_up(api),
    )


def oauth_version(provider: Provider, **credentials: Any) -> dict[str, Any]:
    scheme: dict[str, Any] = {
        "type": "oauth2",
        "grant": "authorization_code",
        "authorization_url": provider.authorization_url,
        "token_url": provider.token_url,
        "revocation_url": provider.revocation_url,
        "scopes": ["points:read", "points:write"],
        "pkce": True,
    }
    scheme.update(credentials)
    if scheme["grant"] == "client_credentials":
        scheme.pop("authorization_url", None)
    return version(
        base_url=provider.api_url,
        webhook_url=None,
        credentials=scheme,
        settings_schema={"type": "object", "properties": {"team": {"type": "string"}}},
    )


async def publish_oauth_cat(
    api: httpx.AsyncClient, people: People, provider: Provider, deployment: Deployment, **credentials: Any
) -> tuple[str, str]:
    """A published OAuth cat with its client set by its publisher: (slug, client secret)."""
    created = await api.post("/api/v1/cats", json=cat_body(), headers=people.publisher.headers)
    assert created.status_code == 201, created.text
    slug: str = created.json()["slug"]
    spec = oauth_version(provider, **credentials)
    added = await api.post(f"/api/v1/cats/{slug}/versions", json=spec, headers=people.publisher.headers)
    assert added.status_code == 201, added.text
    client_id, secret = provider.register_client(deployment.callback)
    put = await api.put(
        f"/api/v1/cats/{slug}/oauth-client",
        json={"client_id": client_id, "client_secret": secret},
        headers=people.publisher.headers,
    )
    assert put.status_code == 200, put.text
    await api.post(f"/api/v1/cats/{slug}/submit", headers=people.publisher.headers)
    approved = await api.post(f"/api/v1/cats/{slug}/approve", headers=people.admin.headers)
    assert approved.status_code == 200, approved.text
    return slug, secret


async def install(api: httpx.AsyncClient, owner: Account, slug: str) -> dict[str, Any]:
    body = {
        "cat": slug,
        "name": f"Main {uuid.uuid4().hex[:6]}",
        "permissions": ["points:read", "points:write"],
        "settings": {"team": "blue"},
        "secrets": {},
    }
    created = await api.post("/api/v1/installations", json=body, headers=owner.headers)
    assert created.status_code == 201, created.text
    installation: dict[str, Any] = created.json()
    return installation


async def authorize(api: httpx.AsyncClient, owner: Account, installation_id: str) -> str:
    """Where the platform sends the owner: the provider's authorization URL."""
    started = await api.get(f"/api/v1/installations/{installation_id}/oauth/authorize", headers=owner.headers)
    assert started.status_code == 302, started.text
    location: str = started.headers["location"]
    return location


async def grant(
    api: httpx.AsyncClient, owner: Account, installation_id: str, *, allow: bool = True, username: str = "alice"
) -> str:
    """The owner at the provider's consent page: the callback URL the provider sends them to."""
    async with httpx.AsyncClient(timeout=10) as browser:
        return await aconsent(browser, await authorize(api, owner, installation_id), allow=allow, username=username)


async def call_through(client: httpx.AsyncClient, url: str, owner: Account) -> httpx.Response:
    """A call through the proxy once it has seen the installation's new state: a proxy process
    keeps what it read of an installation for a second (``context_cache_ttl``)."""
    for _ in range(40):
        response = await client.get(url, headers=owner.headers)
        if response.status_code != 409:
            return response
        await asyncio.sleep(0.1)
    return response
