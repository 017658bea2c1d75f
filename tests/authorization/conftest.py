"""All five services in one process with the relay, a cat's API on a real port, and the cast."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cathouse.platform.settings import Settings
from cathouse.services import SERVICES, create_app
from tests.auth.conftest import signed_up
from tests.authorization.matrix import METHODS, ROLES, Row, read_matrix
from tests.authorization.world import Cast, FakeCat
from tests.conftest import RUN_REDIS_PREFIX, truncate_all
from tests.installation.conftest import FAST_WEBHOOKS
from tests.support import free_port, in_process, serving


@pytest.fixture(scope="module")
def matrix(repo_root: Path) -> dict[tuple[str, str], Row]:
    return read_matrix(repo_root / "docs" / "authorization.md")


@pytest.fixture(scope="module")
async def fake_cat() -> AsyncIterator[FakeCat]:
    cat = FakeCat(port=free_port())

    async def answer(request: Request) -> Response:
        await request.body()
        if request.url.path == "/oauth/token":  # an OAuth cat's provider, issuing a token to any code
            return JSONResponse({"access_token": uuid.uuid4().hex, "token_type": "Bearer", "expires_in": 3600})
        return JSONResponse({"ok": True, "path": request.url.path})

    app = Starlette(routes=[Route("/{rest:path}", answer, methods=list(METHODS))])
    async with serving(app, cat.port):
        yield cat


@pytest.fixture(scope="module")
async def api(
    engine: AsyncEngine,
    make_settings: Callable[..., Settings],
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[httpx.AsyncClient]:
    """All five services in one process with the relay, as `cathouse up` runs them."""
    settings = make_settings(
        database_url,
        catalog={"allow_http": True, "manifest_dir": str(tmp_path_factory.mktemp("manifests")), "facet_ttl": 0},
        installation={**FAST_WEBHOOKS, "oauth_allow_private": True},
        events={"poll_interval": 0.05},
        proxy={"allow_hosts": ["127.0.0.0/8"], "context_cache_ttl": 0},
        activity={"redis_prefix": RUN_REDIS_PREFIX, "stream_max_age": 0.05},
    )
    app = create_app(list(SERVICES.values()), settings=settings, run_relay=True)
    try:
        async with in_process(app) as client:
            yield client
    finally:
        await truncate_all(engine)


@pytest.fixture(scope="module")
async def cast(api: httpx.AsyncClient, engine: AsyncEngine) -> Cast:
    accounts = {p: await signed_up(api, roles=roles, engine=engine) for p, roles in ROLES.items()}
    return Cast(accounts, await signed_up(api))
