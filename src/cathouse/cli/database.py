"""Where the CLI's commands find their database: the configured one, or the embedded one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import SecretStr

from cathouse.platform import migrations
from cathouse.platform.db import create_engine
from cathouse.platform.embedded import embedded_database
from cathouse.platform.settings import Settings
from cathouse.services import COMPONENTS


@contextmanager
def database_settings(settings: Settings) -> Iterator[Settings]:
    """Settings whose ``database_url`` points at a running server for as long as this lasts."""
    if settings.database_url is not None:
        yield settings
        return
    with embedded_database(settings.data_dir) as url:
        yield settings.model_copy(update={"database_url": SecretStr(url)})


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
