"""Where the pages are served: inside the platform's app, or as an app of their own.

Either way the pages hold an ``httpx.AsyncClient`` of the API in ``app.state.web_api``:

* in the one-process platform (``cathouse up``), its transport is the platform app itself
  (ASGI, no socket): the pages still go through the public API with its validation, problems
  and access log, without knowing which port or address the process was given, and without a
  TCP round trip;
* served alone (``cathouse serve web``, port 8007), its base URL is ``CATHOUSE_WEB__API_URL``:
  the gateway in a deployment; unset, the catalog on this machine (``cathouse up --split``
  has no gateway, and the pages read only the catalog so far).

In the one-process platform the visitor's address reaches the API as the request's client (the
API's rate limits count per address: sign-ups and sign-ins through the pages must not all count
as one); served alone, as ``X-Forwarded-For``, which the API's server trusts from the addresses
its ``--forwarded-allow-ips`` names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

import cathouse
from cathouse.platform.health import Health
from cathouse.platform.settings import Settings
from cathouse.web import account, activity, pages
from cathouse.web.api import VISITOR_HEADER
from cathouse.web.session import PageRefused
from cathouse.web.views import STATIC, render

ROUTERS = [pages.router, account.router, activity.router]
_VISITOR = VISITOR_HEADER.encode()

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


def _visitor_as_client(app: ASGIApp) -> ASGIApp:
    """``app`` seeing the pages' visitor as the client of their in-process calls.

    Only the in-process transport goes through this, so the header cannot be sent from outside.
    """

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            visitor = next((value for name, value in headers if name == _VISITOR), None)
            if visitor is not None:
                scope = {
                    **scope,
                    "client": (visitor.decode("latin-1"), 0),
                    "headers": [(name, value) for name, value in headers if name != _VISITOR],
                }
        await app(scope, receive, send)

    return wrapped


async def _refused(request: Request, exc: Exception) -> HTMLResponse:
    assert isinstance(exc, PageRefused)
    return render(request, "problem.html", {"problem": exc.problem}, status=exc.problem.status)


def _pages(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
    app.add_exception_handler(PageRefused, _refused)


def install(app: FastAPI, settings: Settings) -> None:
    """The pages at ``/`` of the platform's ``app``, calling its API inside the process.

    Installed after every service's routers: the API's routes match first, and the pages
    take only what is left (``/``, ``/cats/...``, ``/static/...``).
    """
    _pages(app)
    app.router.lifespan_context = _with_client(
        app.router.lifespan_context, settings, lambda a: httpx.ASGITransport(app=_visitor_as_client(a))
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

    app.state.settings = settings
    _pages(app)
    return app
