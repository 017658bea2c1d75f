from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from fastapi import FastAPI

from cathouse.platform.ratelimit import LimiterUnavailable, RateLimited, RateLimiter, storage_for
from cathouse.platform.settings import Settings
from cathouse.services import create_service_app

STORES = ["memory"] + (["redis"] if os.environ.get("CATHOUSE_REDIS_URL") else [])


@pytest.fixture
async def limits(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    url = os.environ["CATHOUSE_REDIS_URL"] if request.param == "redis" else None
    limiter = RateLimiter(storage_for(url), namespace=f"test-{uuid.uuid4().hex}")
    yield limiter
    await limiter.close()


@pytest.mark.parametrize("limits", STORES, indirect=True)
async def test_the_limit_admits_exactly_its_count_then_refuses_with_retry_after(limits: RateLimiter) -> None:
    for _ in range(3):
        await limits.hit("3/minute", "client-a")
    with pytest.raises(RateLimited) as refused:
        await limits.hit("3/minute", "client-a")
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    await limits.hit("3/minute", "client-b")  # another key has its own budget


async def test_an_unreachable_store_refuses_rather_than_admits() -> None:
    limits = RateLimiter(storage_for("redis://127.0.0.1:1/0"), namespace="unreachable")
    with pytest.raises(LimiterUnavailable):
        await limits.hit("3/minute", "client-a")
    await limits.close()


async def test_login_is_limited_per_client_address(
    make_settings: Callable[..., Settings],
    database_url: str,
    app_client: Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]],
) -> None:
    settings = make_settings(
        database_url, auth={"login_rate": "2/minute", "register_rate": "100/minute"}, redis_url=None
    )
    async with app_client(create_service_app("auth", settings)) as client:
        body = {"email": "nobody@example.com", "password": "whatever it is"}
        codes = [(await client.post("/api/v1/auth/login", json=body)).status_code for _ in range(3)]
        assert codes == [401, 401, 429]
        last = await client.post("/api/v1/auth/login", json=body)
        assert last.headers["content-type"] == "application/problem+json"
        assert int(last.headers["retry-after"]) >= 1


async def test_login_answers_503_when_the_throttle_store_is_unreachable(
    make_settings: Callable[..., Settings],
    database_url: str,
    app_client: Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]],
) -> None:
    settings = make_settings(database_url, redis_url="redis://127.0.0.1:1/0")
    async with app_client(create_service_app("auth", settings)) as client:
        response = await client.post(
            "/api/v1/auth/login", json={"email": "a@example.com", "password": "whatever it is"}
        )
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
