"""Where the pages are served: inside the platform's app, or as an app of their own.

Either way the pages hold an ``httpx.AsyncClient`` of the API in ``app.state.web_api``:

* in the one-process platform (``cathouse up``), its transport is the platform app itself
  (ASGI, no socket): the pages still go through the public API with its validation, problems
  and access log, without knowing which port or address the process was given, and without a
  TCP round trip;
* served alone (``cathouse serve web``, port 8007), its base URL is ``CATHOUSE_WEB__API_URL``:
  the gateway in a deployment; unset, each call goes to the service that serves its path, on
  this machine at that service's port (``cathouse up --split`` has no gateway): the CLI hands
  over the map, read from the services' routes, since the pages may not import the services.

In the one-process platform the visitor's address reaches the API as the request's client (the
API's rate limits count per address: sign-ups and sign-ins through the pages must not all count
as one); served alone, as ``X-Forwarded-For``, which the API's server trusts from the addresses
its ``--forwarded-allow-ips`` names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
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
from cathouse.web import account, activity, admin, connect, console, installs, pages
from cathouse.web.api import VISITOR_HEADER
from cathouse.web.session import PageRefused
from cathouse.web.views import STATIC, render

# connect's route before installs': the latter's catch-all action route would take /connect.
ROUTERS = [pages.router, account.router, connect.router, installs.router, console.router, admin.router, activity.router]
_VISITOR = VISITOR_HEADER.encode()

NAME = "web"


class ByPath(httpx.AsyncBaseTransport):
    """HTTP to the upstream whose path prefix the request's path starts with: the gateway's
    routing, for the pages served beside the split services with no gateway in front."""

    def __init__(self, upstreams: Mapping[str, str], http: httpx.AsyncHTTPTransport | None = None) -> None:
        self._upstreams = sorted(((p, httpx.URL(u)) for p, u in upstreams.items()), key=lambda pu: -len(pu[0]))
        self._http = http or httpx.AsyncHTTPTransport()

    def upstream(self, path: str) -> httpx.URL:
        for prefix, url in self._upstreams:
            if path == prefix or path.startswith(prefix + "/"):
                return url
        raise LookupError(f"no service serves {path}")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = self.upstream(request.url.path)
        request.url = request.url.copy_with(scheme=url.scheme, host=url.host, port=url.port)
        request.headers["Host"] = request.url.netloc.decode("ascii")
        return await self._http.handle_async_request(request)

    async def aclose(self) -> None:
        await self._http.aclose()


def _client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None, upstreams: Mapping[str, str] | None
) -> httpx.AsyncClient:
    base = "http://cathouse"
    if transport is None and settings.web.api_url:
        base = settings.web.api_url
    elif transport is None:
        assert upstreams, "served alone without CATHOUSE_WEB__API_URL, the pages need each service's address"
        transport = ByPath(upstreams)
    return httpx.AsyncClient(transport=transport, base_url=base, timeout=settings.web.api_timeout)


def _with_client(
    inner: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
    settings: Settings,
    transport: Callable[[FastAPI], httpx.AsyncBaseTransport] | None,
    upstreams: Mapping[str, str] | None = None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[Any]]:
    """``inner`` with the API client opened inside it (after the services started) and closed first."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with inner(app) as state, _client(settings, transport(app) if transport else None, upstreams) as client:
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


def create_web_app(settings: Settings, upstreams: Mapping[str, str] | None = None) -> FastAPI:
    """The pages alone, calling the API at ``settings.web.api_url`` or, unset, each path's service
    at its address in ``upstreams`` (``{"/api/v1/cats": "http://127.0.0.1:8002", ...}``)."""

    @asynccontextmanager
    async def nothing(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(
        title="Cat House web",
        version=cathouse.__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=_with_client(nothing, settings, None, upstreams),
    )

    @app.get("/api/v1/health", include_in_schema=False)
    async def health() -> Health:
        """What a gateway's health check asks every upstream (the web's own liveness)."""
        return Health(service=NAME, version=cathouse.__version__)

    app.state.settings = settings
    _pages(app)
    return app
