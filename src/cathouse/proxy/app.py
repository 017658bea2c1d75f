"""The proxy service: the gateway in front, the audit log's routes, and what both stand on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from cathouse.installation.queries import SecretReader
from cathouse.platform.app import create_app as build_app
from cathouse.platform.db import create_engine, sessionmaker
from cathouse.platform.security import TokenVerifier
from cathouse.platform.service import Service
from cathouse.platform.settings import Settings
from cathouse.platform.workers import Worker
from cathouse.proxy.audit import AuditWriter, prune_forever
from cathouse.proxy.context import Contexts
from cathouse.proxy.gateway import GatewayMiddleware, Proxy
from cathouse.proxy.models import Base
from cathouse.proxy.ratelimit import rate_limiter
from cathouse.proxy.router import router
from cathouse.proxy.ssrf import Guard
from cathouse.proxy.upstream import UpstreamPool


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    section = settings.proxy
    sessions = app.state.sessionmakers["proxy"]
    async with AsyncExitStack() as stack:
        secrets = SecretReader(sessions, settings.master_key_value())
        await secrets.load()  # refuses to start with a master key that does not fit
        pool = UpstreamPool(
            connect_timeout=section.connect_timeout,
            read_timeout=section.read_timeout,
            max_idle_per_target=section.max_idle_connections,
        )
        stack.push_async_callback(pool.close)
        limiter = rate_limiter(settings)
        stack.push_async_callback(limiter.close)
        # The service's own pool: lookups are cached, so they rarely wait behind a batch.
        audit = AuditWriter.from_settings(sessions, settings)
        await audit.start()
        stack.push_async_callback(audit.stop)  # writes what is queued; logs what it could not

        def verifier() -> TokenVerifier:
            found: TokenVerifier = app.state.verifier  # made by the platform after the lifespans
            return found

        proxy = Proxy(
            settings=section,
            sessions=sessions,
            contexts=Contexts(sessions, secrets, section.context_cache_ttl),
            guard=Guard(allow=section.allow_hosts, dns_ttl=section.dns_cache_ttl),
            pool=pool,
            limiter=limiter,
            audit=audit,
            verifier=verifier,
            access_log=app.state.access_log,
        )
        app.state.proxy = proxy
        stack.push_async_callback(proxy.drain)
        yield


@asynccontextmanager
async def worker(settings: Settings) -> AsyncIterator[Worker]:
    engine = create_engine(settings, application_name="cathouse-proxy-worker", pool_size=1)
    try:
        sessions = sessionmaker(engine)
        yield Worker(loops=[lambda: prune_forever(sessions, settings)])
    finally:
        await engine.dispose()


SERVICE = Service(
    name="proxy",
    metadata=Base.metadata,
    migrations=Path(__file__).parent / "migrations",
    title="Proxy",
    description="Mediate every call to a cat's API.",
    routers=(router,),
    lifespan=lifespan,
    worker=worker,
    front=(GatewayMiddleware,),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app([SERVICE], settings=settings)
