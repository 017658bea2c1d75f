"""Every service of the platform, in migration order, and the one-process app that serves them."""

from __future__ import annotations

from fastapi import FastAPI

from cathouse.activity.app import SERVICE as ACTIVITY
from cathouse.auth.app import SERVICE as AUTH
from cathouse.catalog.app import SERVICE as CATALOG
from cathouse.installation.app import SERVICE as INSTALLATION
from cathouse.platform.app import create_app
from cathouse.platform.outbox.models import COMPONENT as EVENTS
from cathouse.platform.service import Component, Service
from cathouse.platform.settings import Settings
from cathouse.proxy.app import SERVICE as PROXY

SERVICES: dict[str, Service] = {s.name: s for s in (AUTH, CATALOG, INSTALLATION, PROXY, ACTIVITY)}

# Migration order: each service, then the kernel's events schema.
COMPONENTS: dict[str, Component] = {**SERVICES, EVENTS.name: EVENTS}


def create_platform_app(settings: Settings | None = None) -> FastAPI:
    """Every service's routers in one app, with the outbox relay running beside them."""
    return create_app(list(SERVICES.values()), name="cathouse", settings=settings, run_relay=True)


def create_service_app(name: str, settings: Settings | None = None) -> FastAPI:
    return create_app([SERVICES[name]], settings=settings)
