from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from cathouse.catalog import queries, search
from cathouse.catalog.assets.router import router as assets_router
from cathouse.catalog.assets.storage import storage_from_settings
from cathouse.catalog.manifest_router import router as manifest_router
from cathouse.catalog.models import Base
from cathouse.catalog.moderation import router as moderation_router
from cathouse.catalog.reviews.router import router as reviews_router
from cathouse.catalog.router import router
from cathouse.catalog.webhook_router import router as webhook_router
from cathouse.catalog.worker import worker
from cathouse.platform.service import Service
from cathouse.platform.settings import Settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    app.state.catalog_storage = storage_from_settings(settings)
    app.state.catalog_facets = search.FacetCache(ttl=settings.catalog.facet_ttl)
    try:
        yield
    finally:
        await app.state.catalog_storage.close()


SERVICE = Service(
    name="catalog",
    register=queries.register,
    metadata=Base.metadata,
    migrations=Path(__file__).parent / "migrations",
    title="Catalog",
    description="Publish, moderate, search and review cats.",
    # Fixed paths (manifest.schema.json, sync, validate) before /{slug}, which would take them.
    routers=(manifest_router, router, moderation_router, reviews_router, assets_router, webhook_router),
    lifespan=lifespan,
    worker=worker,
)
