"""The app factory: every service, and the one-process platform, is built here."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

import cathouse
from cathouse.platform import health, metrics, workers
from cathouse.platform.access import access_log
from cathouse.platform.context import service_var
from cathouse.platform.db import create_engine, sessionmaker
from cathouse.platform.docs import install_docs
from cathouse.platform.listen import Listener
from cathouse.platform.logging import configure_logging
from cathouse.platform.middleware import RequestEnvelopeMiddleware
from cathouse.platform.openapi import install_openapi, operation_id
from cathouse.platform.problems import install_error_handlers
from cathouse.platform.registry import Registry
from cathouse.platform.routing import install_method_gate
from cathouse.platform.security import JwksKeySource, KeySource, TokenVerifier
from cathouse.platform.security.revocations import RevocationFeed, Revocations
from cathouse.platform.service import Service
from cathouse.platform.settings import Environment, Settings, get_settings

API_PREFIX = "/api/v1"


def _verifier(app: FastAPI, settings: Settings, revocations: Revocations) -> TokenVerifier:
    """In the process that runs auth, its keys; elsewhere, auth's JWKS over HTTP."""
    source: KeySource = app.state.key_source or JwksKeySource(
        settings.tokens.jwks_url, app.state.http, max_age=settings.tokens.jwks_refresh_interval
    )
    return TokenVerifier(
        source,
        issuer=settings.tokens.issuer,
        audience=settings.tokens.audience,
        leeway=settings.tokens.leeway,
        cache_size=settings.tokens.verified_cache_size,
        revocations=revocations,
    )


def registry_of(services: Sequence[Service]) -> Registry:
    """A registry holding what each of ``services`` provides to the others."""
    registry = Registry()
    for service in services:
        if service.register is not None:
            service.register(registry)
    return registry


def engine_name(services: Sequence[Service], app_name: str) -> str:
    """The ``application_name`` of a process's connections: ``cathouse-<service>`` for one service."""
    return f"cathouse-{services[0].name}" if len(services) == 1 else app_name


def _process_engine(services: Sequence[Service], app_name: str, settings: Settings, *, run_relay: bool) -> AsyncEngine:
    if len(services) == 1:
        section = settings.service(services[0].name)
        # The relay's transaction stays open while the workers' handlers run on the same pool.
        pool_size = section.pool_size + (settings.events.pool_size if run_relay else 0)
    else:
        pool_size = settings.pool_size
    # No overflow: a pool that may grow past its size would break the connection budget.
    return create_engine(settings, application_name=engine_name(services, app_name), pool_size=pool_size)


class CatHouseApp(FastAPI):
    """FastAPI, with room in front of everything for a service's hot path (``Service.front``).

    Starlette wraps even the outermost user middleware in its own error and telemetry layers,
    each wrapping ``send`` again; a proxy call must not pay for them on every chunk it
    forwards. Lifespan and every other request go through FastAPI as usual.
    """

    _front: ASGIApp | None = None

    def put_in_front(self, factory: Callable[[ASGIApp, FastAPI], ASGIApp]) -> None:
        self._front = factory(self._front or super().__call__, self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._front is not None:
            await self._front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(
    services: Sequence[Service],
    *,
    name: str | None = None,
    settings: Settings | None = None,
    run_relay: bool = False,
    registry: Registry | None = None,
) -> FastAPI:
    """Build the FastAPI app serving ``services``; the engine and the relay start in its lifespan.

    A process holds one engine, whose pool every service, the relay and the workers in it share
    (``max_overflow=0``), and at most one LISTEN connection (:class:`~cathouse.platform.listen.Listener`,
    opened when something listens): its connections to PostgreSQL are its pool size plus one.
    One service alone names the engine ``cathouse-<service>`` and sizes it by its section
    (``CATHOUSE_<SERVICE>__POOL_SIZE``, plus ``CATHOUSE_EVENTS__POOL_SIZE`` when the relay runs
    beside it); several services in one process name it after the app (``cathouse``) and size it by
    ``CATHOUSE_POOL_SIZE``.

    ``registry`` holds what the services read of each other (``cathouse.services`` passes one
    with every service's readers); without it, only the served services register theirs.
    """
    settings = settings or get_settings()
    app_name = name or (services[0].name if len(services) == 1 else "cathouse")
    service_var.set(app_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, json_lines=settings.log_json)
        service_var.set(app_name)
        async with AsyncExitStack() as stack:
            engine = _process_engine(services, app_name, settings, run_relay=run_relay)
            stack.push_async_callback(engine.dispose)
            listener = Listener(engine.url, application_name=f"{engine_name(services, app_name)}-listen")
            app.state.listener = await stack.enter_async_context(listener.running())
            sessions = sessionmaker(engine)
            for service in services:
                app.state.engines[service.name] = engine
                app.state.sessionmakers[service.name] = sessions
            for service in services:
                if service.lifespan is not None:
                    await stack.enter_async_context(service.lifespan(app))
            app.state.http = await stack.enter_async_context(httpx.AsyncClient())
            # What a token may have been issued before: its lifetime and the leeway, and a minute.
            revocations = Revocations(keep_for=settings.tokens.access_token_ttl + settings.tokens.leeway + 60)
            feed = RevocationFeed(
                engine, revocations, interval=settings.tokens.revocation_poll_interval, listener=listener
            )
            app.state.revocation_feed = await stack.enter_async_context(feed.running())
            app.state.verifier = _verifier(app, settings, revocations)
            if run_relay:
                factories = [s.worker for s in services if s.worker is not None]
                app.state.relay = await stack.enter_async_context(
                    workers.running(settings, factories, engine=engine, listener=listener, registry=app.state.registry)
                )
            await stack.enter_async_context(metrics.listener(settings))
            logger.info("started", services=[s.name for s in services])
            # Everything made at start (modules, engines, caches) lives as long as the process:
            # moved out of the collector's sight, a full collection under load takes
            # milliseconds instead of a fifth of a second (measured in bench/proxy.py).
            # (Not in tests, where many apps start and stop in one process.)
            if settings.env is not Environment.TEST:
                gc.collect()
                gc.freeze()
            yield
            logger.info("stopping")

    app = CatHouseApp(
        title="Cat House" if len(services) != 1 else f"Cat House {services[0].title or services[0].name}",
        description=" ".join(s.description for s in services if s.description) or "Cat House",
        version=cathouse.__version__,
        openapi_url=None,  # served by install_docs, with Swagger UI without a CDN
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.service_name = app_name
    app.state.registry = registry if registry is not None else registry_of(services)
    app.state.engines = {}
    app.state.sessionmakers = {}
    app.state.relay = None
    app.state.listener = None
    app.state.key_source = None
    app.state.revocation_feed = None
    # One line per request; the proxy's gateway, in front of the middleware, writes its own.
    app.state.access_log = access_log(settings, app_name)

    install_error_handlers(app)
    install_method_gate(app)
    install_openapi(
        app,
        tags=[health.TAG, *(tag for s in services for tag in s.tags)],
        security_schemes={k: v for s in services for k, v in s.security_schemes.items()},
    )
    # Off in production unless CATHOUSE_DOCS=true: the map of every route is nobody else's business.
    if settings.docs_enabled:
        install_docs(app, prefix=API_PREFIX)
    app.add_middleware(RequestEnvelopeMiddleware, service=app_name, access_log=app.state.access_log)
    for service in services:
        for front in service.front:
            app.put_in_front(front)
    app.include_router(health.router)
    if settings.metrics_on_public_port:
        app.include_router(metrics.public_router(settings))
    for service in services:
        for router in service.routers:
            app.include_router(router)
    return app
