from pathlib import Path

from fastapi import FastAPI

from cathouse.activity.models import Base
from cathouse.platform.app import create_app as build_app
from cathouse.platform.service import Service
from cathouse.platform.settings import Settings

SERVICE = Service(
    name="activity",
    metadata=Base.metadata,
    migrations=Path(__file__).parent / "migrations",
    title="Activity",
    description="Feeds and statistics built from domain events.",
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app([SERVICE], settings=settings)
