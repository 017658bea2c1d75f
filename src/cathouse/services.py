"""Every service of the platform, in migration order, and the one-process app that serves them.

Here, above the services, they are wired together: every app and every relay gets a registry
holding what each service provides to the others (``Service.register``), whichever of them
the process serves; a process serving only the proxy still reads the catalog through it.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from cathouse.activity.app import SERVICE as ACTIVITY
from cathouse.auth.app import SERVICE as AUTH
from cathouse.catalog.app import SERVICE as CATALOG
from cathouse.installation.app import SERVICE as INSTALLATION
from cathouse.platform import app as kernel
from cathouse.platform.outbox.models import COMPONENT as EVENTS
from cathouse.platform.registry import Registry
from cathouse.platform.service import Component, Service
from cathouse.platform.settings import Settings
from cathouse.proxy.app import SERVICE as PROXY
from cathouse.web import app as web

SERVICES: dict[str, Service] = {s.name: s for s in (AUTH, CATALOG, INSTALLATION, PROXY, ACTIVITY)}

# Migration order: each service, then the kernel's events schema.
COMPONENTS: dict[str, Component] = {**SERVICES, EVENTS.name: EVENTS}


def api_owners() -> dict[str, str]:
    """Each top of the API's paths (``/api/v1/cats``) and the service that serves it, read from
    the services' own routes: where a client of the split services (the pages served alone) sends
    each call, as the gateway's routes (``deploy/traefik/dynamic.yml``) do."""
    owners: dict[str, str] = {}
    for name, service in SERVICES.items():
        for router in service.routers:
            for route in router.routes:
                path = getattr(route, "path", "")
                top = "/".join(path.split("/")[:4])  # "", "api", "v1", the service's part
                if top.startswith(kernel.API_PREFIX + "/") and owners.setdefault(top, name) != name:
                    raise RuntimeError(f"{top} is served by both {owners[top]} and {name}")
    return owners


def registry() -> Registry:
    """What every service provides to the others (its readers), for one process."""
    return kernel.registry_of(list(SERVICES.values()))


def create_app(
    services: Sequence[Service], *, name: str | None = None, settings: Settings | None = None, run_relay: bool = False
) -> FastAPI:
    """The kernel's app serving ``services``, able to read every service's data through the registry."""
    return kernel.create_app(services, name=name, settings=settings, run_relay=run_relay, registry=registry())


def create_platform_app(settings: Settings | None = None) -> FastAPI:
    """Every service's routers in one app, with the outbox relay running beside them, and the
    web pages at ``/`` calling the API inside the process."""
    app = create_app(list(SERVICES.values()), name="cathouse", settings=settings, run_relay=True)
    web.install(app, app.state.settings)
    return app


def create_service_app(name: str, settings: Settings | None = None) -> FastAPI:
    return create_app([SERVICES[name]], settings=settings)
