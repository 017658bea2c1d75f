from pathlib import Path

from fastapi import FastAPI

from cathouse.catalog.models import Base
from cathouse.catalog.moderation import router as moderation_router
from cathouse.catalog.reviews.router import router as reviews_router
from cathouse.catalog.router import router
from cathouse.platform.app import create_app as build_app
from cathouse.platform.service import Service
from cathouse.platform.settings import Settings

SERVICE = Service(
    name="catalog",
    metadata=Base.metadata,
    migrations=Path(__file__).parent / "migrations",
    title="Catalog",
    description="Publish, moderate, search and review cats.",
    routers=(router, moderation_router, reviews_router),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app([SERVICE], settings=settings)
