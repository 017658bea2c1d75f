from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from cathouse.auth import queries
from cathouse.auth.keys import SigningKeys
from cathouse.auth.models import Base
from cathouse.auth.passwords import Passwords
from cathouse.auth.router import router
from cathouse.auth.service import AuthContext
from cathouse.auth.users.router import router as users_router
from cathouse.platform.ratelimit import RateLimiter, storage_for
from cathouse.platform.service import Service
from cathouse.platform.settings import Settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    keys = SigningKeys(
        app.state.sessionmakers["auth"],
        settings.master_key_value(),
        reload_every=settings.auth.signing_key_reload,
    )
    await keys.start()
    refresher = asyncio.create_task(keys.keep_fresh(), name="signing-key-refresh")
    app.state.auth = AuthContext(settings=settings, passwords=Passwords(settings.auth), keys=keys)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    app.state.auth_limiter = RateLimiter(storage_for(redis_url), namespace="cathouse-auth")
    # Tokens are checked against these keys directly: no HTTP round trip to ourselves.
    app.state.key_source = keys
    try:
        yield
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        await app.state.auth_limiter.close()


SERVICE = Service(
    name="auth",
    register=queries.register,
    metadata=Base.metadata,
    migrations=Path(__file__).parent / "migrations",
    title="Auth",
    description="Accounts, tokens, roles, profiles and forward-auth.",
    routers=(router, users_router),
    tags=(
        {"name": "auth", "description": "Accounts and sessions: register, sign in, refresh and end tokens."},
        {"name": "users", "description": "Your profile and password; finding and managing accounts (admins)."},
    ),
    lifespan=lifespan,
)
