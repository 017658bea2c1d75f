"""Where the CLI's commands find their database: the configured one, or the embedded one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import SecretStr
from sqlalchemy import make_url

from cathouse.platform import migrations, roles
from cathouse.platform.db import create_engine
from cathouse.platform.embedded import embedded_database
from cathouse.platform.settings import Settings
from cathouse.services import COMPONENTS


@contextmanager
def database_settings(settings: Settings, *, read_only: bool = False) -> Iterator[Settings]:
    """Settings whose ``database_url`` points at a running server for as long as this lasts.

    The embedded server gets both roles: its superuser owns the schemas (``migration_database_url``)
    and the services connect as :data:`roles.SERVICE_ROLE`, created and granted here (unless
    ``read_only``: a preview changes nothing).
    """
    if settings.database_url is not None:
        yield settings
        return
    with embedded_database(settings.data_dir) as url:
        service_url = make_url(url).set(username=roles.SERVICE_ROLE).render_as_string(hide_password=False)
        live = settings.model_copy(
            update={"database_url": SecretStr(service_url), "migration_database_url": SecretStr(url)}
        )
        if not read_only:
            asyncio.run(grant_service_role(live))
        yield live


async def grant_service_role(settings: Settings) -> None:
    """Create the services' role if need be and give it its grants, as the owner; nothing when
    the services and the owner are one role."""
    role = roles.service_role(settings)
    if role is None:
        return
    engine = create_engine(settings, application_name="cathouse-migrate", pool_size=1, owner=True)
    try:
        await roles.provide(engine, role, list(COMPONENTS.values()), password=roles.service_password(settings))
    finally:
        await engine.dispose()


async def require_migrated(settings: Settings) -> None:
    """Stop with a clear message when the database is behind the code."""
    engine = create_engine(settings, application_name="cathouse-cli", pool_size=1)
    try:
        current = await migrations.current(engine, list(COMPONENTS.values()))
    finally:
        await engine.dispose()
    behind = [name for name, rev in current.items() if rev != migrations.head(COMPONENTS[name])]
    if behind:
        raise typer.BadParameter(f"the database is not migrated ({', '.join(behind)}): run `cathouse migrate` first")
