"""The proxy service: the gateway in front, the audit log's routes, and what both stand on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from loguru import logger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cathouse.contracts.reads import CatReader, InstallationReader
from cathouse.contracts.secrets import ProviderOptions, SecretVault
from cathouse.platform.db import sessionmaker
from cathouse.platform.registry import Registry
from cathouse.platform.security import TokenVerifier
from cathouse.platform.service import AppendOnly, Service
from cathouse.platform.settings import Settings
from cathouse.platform.workers import Worker
from cathouse.proxy import queries
from cathouse.proxy.audit import AuditWriter, prune_forever
from cathouse.proxy.context import Contexts
from cathouse.proxy.gateway import GatewayMiddleware, Proxy
from cathouse.proxy.models import Base
from cathouse.proxy.ratelimit import rate_limiter
from cathouse.proxy.router import SECURITY_SCHEMES, router
from cathouse.proxy.ssrf import Guard
from cathouse.proxy.upstream import UpstreamPool


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    section = settings.proxy
    sessions = app.state.sessionmakers["proxy"]
    registry: Registry = app.state.registry
    async with AsyncExitStack() as stack:
        # The proxy alone decrypts credentials, to inject them into calls to the cat; unlocking
        # refuses to start with a master key that does not fit.
        oauth = settings.installation
        options = ProviderOptions(
            redirect_uri=settings.public_origin() + "/api/v1/oauth/callback",
            timeout=oauth.oauth_timeout,
            refresh_margin=oauth.oauth_refresh_margin,
            allow_private=oauth.oauth_allow_private,
        )
        secrets = await registry.get(SecretVault).unlock(sessions, settings.master_key_value(), options)
        pool = UpstreamPool(
            connect_timeout=section.connect_timeout,
            read_timeout=section.read_timeout,
            max_idle_per_target=section.max_idle_connections,
        )
        stack.push_async_callback(pool.close)
        limiter = rate_limiter(settings)
        stack.push_async_callback(limiter.close)
        # The service's own pool: lookups are cached, so they rarely wait behind a batch.
        # Refuses to start without the checkpoints' signing key in production.
        audit = AuditWriter.from_settings(sessions, settings)
        if audit.checkpoints is not None:
            app.state.audit_public_key = audit.checkpoints.signer.public
        await audit.start()
        stack.push_async_callback(audit.stop)  # writes what is queued; logs what it could not

        def verifier() -> TokenVerifier:
            found: TokenVerifier = app.state.verifier  # made by the platform after the lifespans
            return found

        proxy = Proxy(
            settings=section,
            sessions=sessions,
            contexts=Contexts(
                sessions,
                registry.get(InstallationReader),
                registry.get(CatReader),
                secrets,
                section.context_cache_ttl,
            ),
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
async def worker(settings: Settings, engine: AsyncEngine, registry: Registry) -> AsyncIterator[Worker]:
    sessions = sessionmaker(engine)
    yield Worker(loops=[lambda: prune_when_allowed(engine, sessions, settings)])


async def prune_when_allowed(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """Prune past the retention, when this process's role may delete audit records: one role for
    everything. The services' own role may not; then `cathouse audit prune`, run as the owner on
    a schedule, does it."""
    async with engine.connect() as conn:
        allowed = await conn.scalar(text("SELECT has_table_privilege('proxy.audit_log', 'DELETE')"))
    if allowed:
        await prune_forever(sessions, settings)
        return
    logger.info("audit records are not pruned here: this role may not delete them; schedule `cathouse audit prune`")
    await asyncio.Event().wait()  # until the worker stops


SERVICE = Service(
    name="proxy",
    register=queries.register,
    metadata=Base.metadata,
    migrations=Path(__file__).parent / "migrations",
    title="Proxy",
    description="Mediate every call to a cat's API.",
    routers=(router,),
    tags=({"name": "proxy", "description": "Call a cat's API through the platform's checks; the audit log of calls."},),
    security_schemes=SECURITY_SCHEMES,
    lifespan=lifespan,
    worker=worker,
    front=(GatewayMiddleware,),
    # Audit records are evidence: the services' role adds and reads them, and moves the chain's
    # head forward, but never changes, deletes or empties them (`cathouse audit prune` does, as the owner).
    append_only=(AppendOnly("audit_log"), AppendOnly("audit_chain", updatable=("last_seq", "last_hash"))),
)
