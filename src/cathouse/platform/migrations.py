"""One Alembic environment per component, driven from code rather than alembic.ini files.

Each component's ``migrations/env.py`` calls :func:`run_env` with its metadata; its version
table lives in its own schema, which the environment creates before Alembic needs it.
"""

from __future__ import annotations

import io
import re
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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


def applied(connection: Connection, component: Component) -> str | None:
    """The component's applied revision (``None``: base)."""
    ctx = MigrationContext.configure(connection, opts={"version_table_schema": component.schema})
    return ctx.get_current_revision()


async def current(engine: AsyncEngine, components: Sequence[Component]) -> dict[str, str | None]:
    async with engine.connect() as conn:
        return {c.name: await conn.run_sync(applied, c) for c in components}


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


@dataclass(frozen=True)
class ForeignKey:
    """A constraint of another schema that points into the one going down."""

    name: str
    schema: str
    table: str
    references: str


class DowngradeBlocked(Exception):
    """Another schema's foreign keys point at tables the downgrade would drop."""

    def __init__(self, component: Component, keys: Sequence[ForeignKey], components: Sequence[Component]) -> None:
        self.keys = list(keys)
        order = [c.schema for c in components]
        # The schemas to take down first, the last migrated first.
        schemas = sorted({k.schema for k in keys}, key=lambda s: -order.index(s) if s in order else 0)
        self.first = schemas
        names = {c.schema: c.name for c in components}
        shown = ", ".join(f"{k.schema}.{k.table} -> {k.references}" for k in self.keys[:3])
        more = f" and {len(self.keys) - 3} more" if len(self.keys) > 3 else ""
        super().__init__(
            f"{component.name} cannot go down: {' and '.join(schemas)} still {'has' if len(schemas) == 1 else 'have'} "
            f"foreign keys into it ({shown}{more}); "
            f"downgrade {' then '.join(names.get(s, s) for s in schemas)} first"
        )


_DROP_TABLE = re.compile(r"DROP TABLE (?:IF EXISTS )?(?:\"?(\w+)\"?\.)?\"?(\w+)\"?", re.IGNORECASE)


def downgrade_sql(component: Component, revisions: str, output: TextIO = sys.stdout) -> None:
    """Write the SQL that takes ``component`` down over ``revisions`` (``FROM:TO``; TO may be
    relative, ``-1``), without a database."""
    command.downgrade(alembic_config(component, output=output), revisions, sql=True)


def dropped_tables(component: Component, start: str, target: str) -> set[str]:
    """The tables of the component's schema that going down from ``start`` to ``target`` drops."""
    out = io.StringIO()
    downgrade_sql(component, f"{start}:{target}", out)
    found = {(schema or component.schema, table) for schema, table in _DROP_TABLE.findall(out.getvalue())}
    return {table for schema, table in found if schema == component.schema}


async def foreign_keys_into(conn: AsyncConnection, schema: str) -> list[ForeignKey]:
    """Foreign keys of other schemas that reference tables of ``schema``."""
    rows = await conn.execute(
        text(
            "SELECT con.conname, src_ns.nspname, src.relname, dst.relname FROM pg_constraint con "
            "JOIN pg_class src ON src.oid = con.conrelid JOIN pg_namespace src_ns ON src_ns.oid = src.relnamespace "
            "JOIN pg_class dst ON dst.oid = con.confrelid JOIN pg_namespace dst_ns ON dst_ns.oid = dst.relnamespace "
            "WHERE con.contype = 'f' AND dst_ns.nspname = :schema AND src_ns.nspname <> :schema "
            "ORDER BY src_ns.nspname, src.relname, con.conname"
        ),
        {"schema": schema},
    )
    return [ForeignKey(name, src_schema, src_table, f"{schema}.{dst}") for name, src_schema, src_table, dst in rows]


async def blocking_foreign_keys(conn: AsyncConnection, component: Component, revision: str) -> list[ForeignKey]:
    """The foreign keys of other schemas that would stop ``component`` going down to ``revision``:
    every one into its schema when the target is ``base``, else those into the tables it drops."""
    keys = await foreign_keys_into(conn, component.schema)
    if not keys or revision == "base":
        return keys
    start = await conn.run_sync(applied, component)
    if start is None:
        return []
    dropped = dropped_tables(component, start, revision)
    return [k for k in keys if k.references.split(".", 1)[1] in dropped]


async def downgrade(
    engine: AsyncEngine, component: Component, revision: str, components: Sequence[Component] = ()
) -> str | None:
    """Take ``component`` down to ``revision``, refused (before anything runs) with
    :class:`DowngradeBlocked` when another schema's foreign keys depend on what it would drop.
    Returns the revision it is at now."""
    async with engine.connect() as conn:
        keys = await blocking_foreign_keys(conn, component, revision)
    if keys:
        raise DowngradeBlocked(component, keys, components)
    try:
        await _run(engine, component, "downgrade", revision)
    except DBAPIError as exc:
        # What the check above cannot foresee (a migration dropping a referenced column); the
        # downgrade ran in one transaction, rolled back.
        if getattr(exc.orig, "sqlstate", None) != "2BP01":  # dependent_objects_still_exist
            raise
        async with engine.connect() as conn:
            keys = await foreign_keys_into(conn, component.schema)
        if not keys:
            raise
        raise DowngradeBlocked(component, keys, components) from None
    return (await current(engine, [component]))[component.name]


def print_sql(components: Sequence[Component], output: TextIO = sys.stdout) -> None:
    """Write the SQL of every migration from base to head, without touching a database."""
    for component in components:
        output.write(f"\n-- {component.name}: schema {component.schema}\n")
        command.upgrade(alembic_config(component, output=output), "head", sql=True)
