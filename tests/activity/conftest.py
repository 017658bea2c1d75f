"""Fixtures for the activity service: the platform (auth, catalog, installation, activity) in one
app with the relay feeding the consumer, over the PostgreSQL store and, when CATHOUSE_REDIS_URL is
set, over the Redis store too; and the stores on their own."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.activity.readmodel import ReadModel
from cathouse.activity.stores import PostgresReadModel, RedisReadModel
from cathouse.platform.outbox.relay import Event
from cathouse.platform.settings import Settings
from cathouse.services import SERVICES, create_app
from tests.auth.conftest import signed_up
from tests.conftest import truncate_all, truncate_schemas
from tests.installation.conftest import KEYRING_TABLES, People, install_body, publish
from tests.support import in_process

REDIS_URL = os.environ.get("CATHOUSE_REDIS_URL")
# Every key this run writes starts with it: runs sharing a Redis server never meet.
RUN_PREFIX = f"cathouse-test-{uuid.uuid4().hex[:12]}:"
STORES = ["postgres", pytest.param("redis", marks=pytest.mark.skipif(not REDIS_URL, reason="CATHOUSE_REDIS_URL unset"))]

__all__ = ["People", "install_body", "publish"]


def redis_prefix(label: str) -> str:
    return f"{RUN_PREFIX}{label}-{uuid.uuid4().hex[:8]}:"


async def drop_keys(prefix: str) -> None:
    assert REDIS_URL is not None
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        keys: list[str] = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.unlink(*keys)
    finally:
        await client.aclose()


@dataclass
class Platform:
    app: FastAPI
    api: httpx.AsyncClient
    settings: Settings
    engine: AsyncEngine
    store: str

    @property
    def model(self) -> ReadModel:
        model: ReadModel = self.app.state.activity_model
        return model

    async def settle(self, within: float = 10.0) -> None:
        """Wait until every committed event has been handled by every group."""
        await settle(self.engine, within)


async def settle(engine: AsyncEngine, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        async with engine.connect() as conn:
            # Relayed, and not parked for a group that failed it (it is retried from there).
            waiting = await conn.scalar(
                text(
                    "SELECT (SELECT count(*) FROM events.outbox WHERE published_at IS NULL)"
                    " + (SELECT count(*) FROM events.retries)"
                )
            )
        if waiting == 0:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{waiting} events still wait for the relay")
        await asyncio.sleep(0.05)


def platform_settings(make_settings: Callable[..., Settings], database_url: str, store: str) -> Settings:
    prefix = redis_prefix("platform")
    return make_settings(
        database_url,
        redis_url=REDIS_URL if store == "redis" else None,
        catalog={"allow_http": True},
        events={"poll_interval": 0.05},
        activity={"redis_prefix": prefix, "stream_poll_interval": 0.2, "stream_heartbeat": 0.5, "lag_interval": 0.1},
    )


@pytest.fixture(scope="module", params=STORES)
async def platform(
    request: pytest.FixtureRequest, engine: AsyncEngine, make_settings: Callable[..., Settings], database_url: str
) -> AsyncIterator[Platform]:
    store: str = request.param
    settings = platform_settings(make_settings, database_url, store)
    services = [SERVICES[name] for name in ("auth", "catalog", "installation", "activity")]
    app = create_app(services, settings=settings, run_relay=True)
    try:
        async with in_process(app) as client:
            yield Platform(app, client, settings, engine, store)
    finally:
        await truncate_all(engine)
        if store == "redis":
            await drop_keys(settings.activity.redis_prefix)


async def wipe(platform: Platform) -> None:
    """Everything but accounts and keys: each test starts from an empty history."""
    await platform.settle()
    await truncate_schemas(platform.engine, ("installation", "catalog", "events", "activity"), keep=KEYRING_TABLES)
    if platform.store == "redis":
        await drop_keys(platform.settings.activity.redis_prefix)


@pytest.fixture
async def live(platform: Platform, people: People) -> AsyncIterator[Platform]:
    """The platform, its accounts made, with an empty history before and after the test."""
    await wipe(platform)
    yield platform
    await wipe(platform)


@pytest.fixture(scope="module")
async def people(platform: Platform) -> People:
    return People(
        publisher=await signed_up(platform.api, roles=("developer",), engine=platform.engine),
        admin=await signed_up(platform.api, roles=("admin",), engine=platform.engine),
        owner=await signed_up(platform.api),
        stranger=await signed_up(platform.api),
    )


async def install(api: httpx.AsyncClient, people: People, slug: str, name: str = "Main") -> str:
    created = await api.post("/api/v1/installations", json=install_body(slug, name=name), headers=people.owner.headers)
    assert created.status_code == 201, created.text
    installation_id: str = created.json()["id"]
    return installation_id


# --- stores on their own ---------------------------------------------------------------------


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, committed: AsyncEngine) -> AsyncIterator[ReadModel]:
    """An empty read model of each kind; the PostgreSQL one on the test database, wiped after."""
    if request.param == "postgres":
        model: ReadModel = PostgresReadModel(committed)
        yield model
        await model.close()
        return
    assert REDIS_URL is not None
    prefix = redis_prefix("store")
    model = RedisReadModel.from_url(REDIS_URL, prefix=prefix, global_cap=20, user_cap=10, cat_cap=15)
    try:
        yield model
    finally:
        await model.close()
        await drop_keys(prefix)


_seq = 0


def event(event_type: str, aggregate_id: uuid.UUID | str, *, schema_version: int = 1, **payload: Any) -> Event:
    """An event as the relay hands it over; ``seq`` grows across a test run."""
    global _seq
    _seq += 1
    return Event(
        id=str(uuid.uuid4()),
        seq=_seq,
        aggregate_type=event_type.split(".")[0],
        aggregate_id=str(aggregate_id),
        event_type=event_type,
        schema_version=schema_version,
        payload={k: str(v) if isinstance(v, uuid.UUID) else v for k, v in payload.items()},
        occurred_at=datetime.now(UTC),
        request_id=None,
        attempts=0,
    )
