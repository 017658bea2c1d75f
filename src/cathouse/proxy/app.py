from pathlib import Path

from fastapi import FastAPI

from cathouse.platform.app import create_app as build_app
from cathouse.platform.service import Service
from cathouse.platform.settings import Settings
from cathouse.proxy.models import Base

SERVICE = Service(
    name="proxy",
    metadata=Base.metadata,
    migrations=Path(__file__).parent / "migrations",
    title="Proxy",
    description="Mediate every call to a cat's API.",
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app([SERVICE], settings=settings)
