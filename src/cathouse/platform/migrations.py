"""One Alembic environment per component, driven from code rather than alembic.ini files.

Each component's ``migrations/env.py`` calls :func:`run_env` with its metadata; its version
table lives in its own schema, which the environment creates before Alembic needs it.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Sequence
from typing import Any, TextIO

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.service import Component

VERSION_TABLE = "alembic_version"


def _schema_filter(schema: str) -> Any:
    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return name == schema if type_ == "schema" else True

    return include_name


def run_env(metadata: MetaData) -> None:
    """The body of every component's ``env.py``."""
    schema = metadata.schema
    assert schema is not None
    options: dict[str, Any] = {
        "target_metadata": metadata,
        "version_table_schema": schema,
        "include_schemas": True,
        "include_name": _schema_filter(schema),
    }
    if context.is_offline_mode():
        context.configure(dialect_name="postgresql", literal_binds=True, **options)
        context.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        with context.begin_transaction():
            context.run_migrations()
        return

    connection: Connection = context.config.attributes["connection"]
    # Two processes migrating at once (replicas starting together) take turns here.
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(schema.encode())})
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    context.configure(connection=connection, transaction_per_migration=False, **options)
    with context.begin_transaction():
        context.run_migrations()


def alembic_config(component: Component, *, output: TextIO | None = None) -> Config:
    config = Config(output_buffer=output) if output is not None else Config()
    config.set_main_option("script_location", str(component.migrations))
    return config


def head(component: Component) -> str | None:
    return ScriptDirectory.from_config(alembic_config(component)).get_current_head()


def _current(connection: Connection, component: Component) -> str | None:
    ctx = MigrationContext.configure(connection, opts={"version_table_schema": component.schema})
    return ctx.get_current_revision()


async def current(engine: AsyncEngine, components: Sequence[Component]) -> dict[str, str | None]:
    async with engine.connect() as conn:
        return {c.name: await conn.run_sync(_current, c) for c in components}


async def _run(engine: AsyncEngine, component: Component, action: str, revision: str) -> None:
    config = alembic_config(component)

    def go(connection: Connection) -> None:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    async with engine.connect() as conn:
        await conn.run_sync(go)
        await conn.commit()


async def upgrade(engine: AsyncEngine, components: Sequence[Component]) -> dict[str, tuple[str | None, str | None]]:
    """Apply every pending migration, component by component, in the order given."""
    before = await current(engine, components)
    for component in components:
        await _run(engine, component, "upgrade", "head")
    after = await current(engine, components)
    return {name: (before[name], after[name]) for name in before}


async def downgrade(engine: AsyncEngine, component: Component, revision: str) -> None:
    await _run(engine, component, "downgrade", revision)


def print_sql(components: Sequence[Component], output: TextIO = sys.stdout) -> None:
    """Write the SQL of every migration from base to head, without touching a database."""
    for component in components:
        output.write(f"\n-- {component.name}: schema {component.schema}\n")
        command.upgrade(alembic_config(component, output=output), "head", sql=True)
