from pathlib import Path

from fastapi import FastAPI

from cathouse.auth.models import Base
from cathouse.platform.app import create_app as build_app
from cathouse.platform.service import Service
from cathouse.platform.settings import Settings

SERVICE = Service(
    name="auth",
    metadata=Base.metadata,
    migrations=Path(__file__).parent / "migrations",
    title="Auth",
    description="Accounts, tokens, roles, profiles and forward-auth.",
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app([SERVICE], settings=settings)
