"""Migrations run against a scratch database of their own, so they can go down and up again."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform import migrations
from cathouse.services import COMPONENTS

ALL = list(COMPONENTS.values())


async def schemas(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT nspname FROM pg_namespace"))
        return {r[0] for r in rows}


async def version_tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT schemaname FROM pg_tables WHERE tablename = 'alembic_version'"))
        return {r[0] for r in rows}


async def test_upgrade_creates_a_schema_per_component_with_its_own_version_table(scratch: AsyncEngine) -> None:
    changes = await migrations.upgrade(scratch, ALL)
    expected = {"auth", "catalog", "installation", "proxy", "activity", "events"}
    assert list(changes) == ["auth", "catalog", "installation", "proxy", "activity", "events"]
    assert expected <= await schemas(scratch)
    assert await version_tables(scratch) == expected
    assert all(before is None and after == migrations.head(COMPONENTS[n]) for n, (before, after) in changes.items())


async def test_a_second_upgrade_changes_nothing(scratch: AsyncEngine) -> None:
    await migrations.upgrade(scratch, ALL)
    second = await migrations.upgrade(scratch, ALL)
    assert all(before == after for before, after in second.values())


async def test_downgrade_to_base_and_upgrade_again(scratch: AsyncEngine) -> None:
    await migrations.upgrade(scratch, ALL)
    for component in reversed(ALL):
        await migrations.downgrade(scratch, component, "base")
    assert set((await migrations.current(scratch, ALL)).values()) == {None}
    async with scratch.connect() as conn:
        outbox = await conn.scalar(text("SELECT to_regclass('events.outbox')"))
    assert outbox is None

    await migrations.upgrade(scratch, ALL)
    current = await migrations.current(scratch, ALL)
    assert current == {name: migrations.head(c) for name, c in COMPONENTS.items()}


def test_sql_mode_prints_every_component_without_a_database() -> None:
    out = io.StringIO()
    migrations.print_sql(ALL, out)
    sql = out.getvalue()
    for schema in ("auth", "catalog", "installation", "proxy", "activity", "events"):
        assert f'CREATE SCHEMA IF NOT EXISTS "{schema}"' in sql
        assert f"CREATE TABLE {schema}.alembic_version" in sql
    assert "CREATE TABLE events.outbox" in sql


async def test_only_foreign_keys_into_what_a_downgrade_drops_block_it(scratch: AsyncEngine) -> None:
    await migrations.upgrade(scratch, ALL)
    catalog = COMPONENTS["catalog"]
    async with scratch.connect() as conn:
        # One step back drops a search table nobody else references; base drops the cats.
        assert await migrations.blocking_foreign_keys(conn, catalog, "-1") == []
        to_first = await migrations.blocking_foreign_keys(conn, catalog, "catalog_0001")
        assert await migrations.blocking_foreign_keys(conn, catalog, "base") == to_first
    assert {(k.schema, k.table, k.references) for k in to_first} >= {("installation", "installations", "catalog.cats")}
    with pytest.raises(migrations.DowngradeBlocked, match="downgrade installation first"):
        await migrations.downgrade(scratch, catalog, "catalog_0001", ALL)
    assert (await migrations.current(scratch, ALL))["catalog"] == migrations.head(catalog)
