"""Where the pages are served: inside the platform's app, or as an app of their own.

Either way the pages hold an ``httpx.AsyncClient`` of the API in ``app.state.web_api``:

* in the one-process platform (``cathouse up``), its transport is the platform app itself
  (ASGI, no socket): the pages still go through the public API with its validation, problems
  and access log, without knowing which port or address the process was given, and without a
  TCP round trip;
* served alone (``cathouse serve web``, port 8007), its base URL is ``CATHOUSE_WEB__API_URL``:
  the gateway in a deployment; unset, the catalog on this machine (``cathouse up --split``
  has no gateway, and the pages read only the catalog so far).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import cathouse
from cathouse.platform.health import Health
from cathouse.platform.settings import Settings
from cathouse.web.pages import router
from cathouse.web.views import STATIC

NAME = "web"


def _client(settings: Settings, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    if transport is not None:
        base = "http://cathouse"
    else:
        base = settings.web.api_url or f"http://127.0.0.1:{settings.catalog.port}"
    return httpx.AsyncClient(transport=transport, base_url=base, timeout=settings.web.api_timeout)


def _with_client(
    inner: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
    settings: Settings,
    transport: Callable[[FastAPI], httpx.AsyncBaseTransport] | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[Any]]:
    """``inner`` with the API client opened inside it (after the services started) and closed first."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with inner(app) as state, _client(settings, transport(app) if transport else None) as client:
            app.state.web_api = client
            yield state

    return lifespan


def install(app: FastAPI, settings: Settings) -> None:
    """The pages at ``/`` of the platform's ``app``, calling its API inside the process.

    Installed after every service's routers: the API's routes match first, and the pages
    take only what is left (``/``, ``/cats/...``, ``/static/...``).
    """
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
    app.router.lifespan_context = _with_client(
        app.router.lifespan_context, settings, lambda a: httpx.ASGITransport(app=a)
    )


def create_web_app(settings: Settings) -> FastAPI:
    """The pages alone, calling the API at ``settings.web.api_url``."""

    @asynccontextmanager
    async def nothing(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(
        title="Cat House web",
        version=cathouse.__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=_with_client(nothing, settings, None),
    )

    @app.get("/api/v1/health", include_in_schema=False)
    async def health() -> Health:
        """What a gateway's health check asks every upstream (the web's own liveness)."""
        return Health(service=NAME, version=cathouse.__version__)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
    return app
