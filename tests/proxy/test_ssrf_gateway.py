"""The SSRF guard in the running gateway: cats whose API points inside the network are never reached.

A canary server listens on loopback and counts every connection it accepts. Each base URL below
leads there (or to another internal address) in some notation. The catalog refuses such a
version when it is written; one stored before it did (here: rewritten in the database) must
still be refused by the proxy on every call, and the canary must see nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.settings import Settings
from cathouse.proxy.ssrf import Guard
from cathouse.services import SERVICES, create_app
from tests.catalog.conftest import cat_body
from tests.conftest import truncate_all, truncate_schemas
from tests.installation.conftest import FAST_WEBHOOKS, KEYRING_TABLES, version
from tests.proxy.conftest import People, Upstream, installed
from tests.support import in_process

PUBLIC = "93.184.216.34"  # a public address (nothing listens for us there: no internet here)


class Canary:
    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@pytest.fixture(scope="module")
async def canary() -> AsyncIterator[Canary]:
    canary = Canary()
    # Dual-stack where the machine has IPv6, so [::1] and mapped forms would reach it too.
    canary.server = await asyncio.start_server(canary.accepted, host=["127.0.0.1"], port=0)
    try:
        yield canary
    finally:
        canary.server.close()
        await canary.server.wait_closed()


@pytest.fixture(scope="module")
async def app(make_settings: Callable[..., Settings], database_url: str) -> FastAPI:
    settings = make_settings(
        database_url,
        catalog={"allow_http": True},
        installation=FAST_WEBHOOKS,
        events={"poll_interval": 0.05},
        proxy={"context_cache_ttl": 0, "retry_attempts": 1},  # nothing allowed beyond the public internet
    )
    return create_app(
        [SERVICES[s] for s in ("auth", "catalog", "installation", "proxy")], settings=settings, run_relay=True
    )


@pytest.fixture(scope="module")
async def platform(app: FastAPI, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    try:
        async with in_process(app) as client:
            yield client
    finally:
        await truncate_all(engine)


@pytest.fixture
async def api(platform: httpx.AsyncClient, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    yield platform
    await truncate_schemas(engine, ("installation", "catalog", "events", "proxy"), keep=KEYRING_TABLES)


def forbidden(port: int) -> list[str]:
    p = port
    return [
        f"http://127.0.0.1:{p}",
        f"http://2130706433:{p}",  # 127.0.0.1 as one decimal number
        f"http://0177.0.0.1:{p}",  # octal
        f"http://0x7f.0.0.1:{p}",  # hex
        f"http://0x7f000001:{p}",
        f"http://127.1:{p}",  # short form
        f"http://[::1]:{p}",
        f"http://[::ffff:127.0.0.1]:{p}",  # IPv4-mapped IPv6
        f"http://[::ffff:7f00:1]:{p}",
        f"http://localhost:{p}",
        f"http://LOCALHOST.:{p}",
        f"http://cat.localhost:{p}",
        f"http://0.0.0.0:{p}",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://[fd00:ec2::254]/latest/meta-data",  # AWS metadata over IPv6
        "http://100.100.100.200/latest/meta-data",  # Alibaba metadata, shared range
        "http://10.0.0.1",
        "http://172.16.0.1",
        "http://192.168.0.1",
        "http://100.64.0.1",
        "http://[fe80::1]",
        "http://224.0.0.1",
        "http://[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1
    ]


async def stored_base_url(engine: AsyncEngine, installation_id: str, base_url: str) -> None:
    """The installation's version as one written before the catalog checked base URLs."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE catalog.cat_versions v SET base_url = :url"
                " FROM installation.installations i WHERE i.id = CAST(:id AS uuid) AND v.id = i.version_id"
            ),
            {"url": base_url, "id": installation_id},
        )


async def test_no_forbidden_target_is_ever_connected_to(
    api: httpx.AsyncClient, people: People, canary: Canary, engine: AsyncEngine
) -> None:
    targets = forbidden(canary.port)
    assert len(targets) >= 20
    cat = await api.post("/api/v1/cats", json=cat_body(), headers=people.publisher.headers)
    for base_url in targets:
        spec = version(version="9.9.9", base_url=base_url, webhook_url=None)
        written = await api.post(
            f"/api/v1/cats/{cat.json()['slug']}/versions", json=spec, headers=people.publisher.headers
        )
        assert written.status_code == 422, (base_url, written.text)
        installation = await installed(api, people, f"http://cat-{canary.port}.example/v1")
        await stored_base_url(engine, installation, base_url)
        response = await api.get(f"/api/v1/proxy/{installation}/balances/1", headers=people.owner.headers)
        assert response.status_code == 502, (base_url, response.text)
        assert response.json()["decision"] == "blocked_address", base_url
    assert canary.connections == 0


async def test_a_name_whose_answer_changes_after_the_check_is_connected_to_as_checked(
    api: httpx.AsyncClient, app: FastAPI, people: People, canary: Canary
) -> None:
    answers = [PUBLIC, "127.0.0.1"]
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return [answers[min(len(asked) - 1, 1)]]

    proxy = app.state.proxy
    original = proxy.guard
    proxy.guard = Guard(resolver=rebinding, dns_ttl=60)
    try:
        installation = await installed(api, people, f"http://rebind.example:{canary.port}")
        first = await api.get(f"/api/v1/proxy/{installation}/balances/1", headers=people.owner.headers)
        second = await api.get(f"/api/v1/proxy/{installation}/balances/1", headers=people.owner.headers)
    finally:
        proxy.guard = original
    # Both calls went to the public address that was checked (unreachable here), never to loopback.
    assert asked == ["rebind.example"]
    assert first.json()["decision"] in ("upstream_error", "upstream_timeout")
    assert second.json()["decision"] in ("upstream_error", "upstream_timeout", "circuit_open")
    assert canary.connections == 0


async def test_a_redirect_to_an_internal_address_is_returned_not_followed(
    api: httpx.AsyncClient, app: FastAPI, people: People, canary: Canary, upstream: Upstream
) -> None:
    # The cat itself is allowed (as a named host); its answer sends callers to the canary.
    proxy = app.state.proxy
    original = proxy.guard

    async def to_upstream(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    proxy.guard = Guard(allow=["cat.test"], resolver=to_upstream)
    upstream.redirect_to = f"http://127.0.0.1:{canary.port}/latest/meta-data"
    try:
        installation = await installed(api, people, f"http://cat.test:{upstream.port}/v1")
        response = await api.get(f"/api/v1/proxy/{installation}/balances/1", headers=people.owner.headers)
    finally:
        proxy.guard = original
        upstream.redirect_to = None
    assert response.status_code == 302
    assert response.headers["location"].endswith("/latest/meta-data")
    assert len(upstream.seen) == 1
    assert canary.connections == 0
