from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from cathouse.installation import queries
from cathouse.installation.api_keys import router as api_keys_router
from cathouse.installation.deliveries import router as deliveries_router
from cathouse.installation.keyring import Keyring
from cathouse.installation.models import Base
from cathouse.installation.oauth.router import router as oauth_router
from cathouse.installation.owner_webhook_router import router as owner_webhook_router
from cathouse.installation.router import router
from cathouse.installation.worker import worker
from cathouse.platform.service import Service
from cathouse.platform.settings import Settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    keyring = Keyring(app.state.sessionmakers["installation"], settings.master_key_value())
    # Refuse to start rather than fail every credential read later: the master key must fit.
    await keyring.load()
    app.state.keyring = keyring
    yield


SERVICE = Service(
    name="installation",
    register=queries.register,
    metadata=Base.metadata,
    migrations=Path(__file__).parent / "migrations",
    title="Installation",
    description="Install cats, consent to permissions, keep credentials safe.",
    # The literal paths first: "/{installation_id}" would take "owner-webhook" for an id.
    routers=(deliveries_router, owner_webhook_router, router, api_keys_router, oauth_router),
    tags=(
        {"name": "installations", "description": "Install cats, grant permissions, keep their secrets; lifecycle."},
        {"name": "api keys", "description": "Keys an installation's own application calls the proxy with."},
        {"name": "webhook deliveries", "description": "The provisioning webhooks sent to a cat, and redelivery."},
        {"name": "oauth", "description": "Connect an installation to its cat's OAuth 2.0 provider, and reconnect."},
        {"name": "owner webhook", "description": "Your own webhook: told, signed, when an installation needs you."},
    ),
    lifespan=lifespan,
    worker=worker,
)
