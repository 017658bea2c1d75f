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
from cathouse.catalog.oauth_router import router as oauth_router
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
    routers=(manifest_router, router, moderation_router, reviews_router, assets_router, webhook_router, oauth_router),
    tags=(
        {"name": "cats", "description": "Search the catalog; publish cats and their versions (developers)."},
        {"name": "manifests", "description": "Cats as files: a manifest's schema, a check, an admin's sync."},
        {"name": "moderation", "description": "Review before publishing, and taking cats down (admins)."},
        {"name": "reviews", "description": "Ratings and reviews of a cat; its publisher's answers."},
        {"name": "assets", "description": "A cat's icon and screenshots, served at content-addressed URLs."},
        {"name": "webhooks", "description": "The secrets a cat's provisioning webhooks are signed with."},
        {
            "name": "oauth clients",
            "description": "The OAuth 2.0 client of a cat whose tokens come from a provider.",
        },
    ),
    lifespan=lifespan,
    worker=worker,
)
