"""``cathouse migrate`` as an operator types it: real processes on a database of their own."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform import migrations
from cathouse.services import COMPONENTS
from tests.support import cathouse_env

ALL = list(COMPONENTS.values())
HEADS = {name: migrations.head(c) for name, c in COMPONENTS.items()}


@pytest.fixture
async def migrated(scratch: AsyncEngine) -> AsyncEngine:
    await migrations.upgrade(scratch, ALL)
    return scratch


def cathouse(args: list[str], engine: AsyncEngine, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    url = engine.url.render_as_string(hide_password=False)
    return subprocess.run(
        [sys.executable, "-m", "cathouse", *args],
        env=cathouse_env(tmp_path, database_url=url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def run(args: list[str], engine: AsyncEngine, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cathouse, args, engine, tmp_path)


async def tables(engine: AsyncEngine, schema: str) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema})
        return {r[0] for r in rows}


PREVIEWS = [
    ["migrate", "--sql", "downgrade", "activity", "activity_0001"],  # the option of the group
    ["migrate", "downgrade", "activity", "-1", "--sql"],  # the option of the subcommand
    ["migrate", "downgrade", "--sql", "activity", "base"],
]


async def test_a_downgrade_preview_prints_sql_and_changes_nothing(migrated: AsyncEngine, tmp_path: Path) -> None:
    before = await tables(migrated, "activity")
    for args in PREVIEWS:
        done = await run(args, migrated, tmp_path)

        assert done.returncode == 0, done.stderr
        assert "DROP TABLE activity.entries;" in done.stdout
        assert "UPDATE activity.alembic_version SET version_num='activity_0001'" in done.stdout
        assert await migrations.current(migrated, ALL) == HEADS
        assert await tables(migrated, "activity") == before


async def test_a_preview_from_a_given_revision_reads_no_database(tmp_path: Path, scratch: AsyncEngine) -> None:
    # The scratch database is empty: a preview that needed it would find nothing to take down.
    done = await run(["migrate", "downgrade", "catalog", "catalog_0006:catalog_0005", "--sql"], scratch, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "-- Running downgrade catalog_0006 -> catalog_0005" in done.stdout
    assert await migrations.current(scratch, ALL) == dict.fromkeys(COMPONENTS)


async def test_an_upgrade_preview_changes_nothing(migrated: AsyncEngine, tmp_path: Path) -> None:
    await migrations.downgrade(migrated, COMPONENTS["activity"], "activity_0001")

    done = await run(["migrate", "--sql"], migrated, tmp_path)

    assert done.returncode == 0, done.stderr
    assert "CREATE TABLE activity.entries" in done.stdout
    assert await migrations.current(migrated, ALL) == {**HEADS, "activity": "activity_0001"}
    assert "entries" not in await tables(migrated, "activity")

    current = await run(["migrate", "current"], migrated, tmp_path)
    assert current.returncode == 0, current.stderr
    assert "activity_0001" in current.stdout


async def test_a_relative_step_back_works_as_written(migrated: AsyncEngine, tmp_path: Path) -> None:
    done = await run(["migrate", "downgrade", "activity", "-1"], migrated, tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "activity is now at activity_0001"
    assert (await migrations.current(migrated, ALL))["activity"] == "activity_0001"


async def test_a_downgrade_other_schemas_depend_on_is_refused_in_one_line_until_they_go_first(
    migrated: AsyncEngine, tmp_path: Path
) -> None:
    before = await tables(migrated, "auth")
    preview = await run(["migrate", "--sql", "downgrade", "auth", "base"], migrated, tmp_path)
    assert preview.returncode == 0, preview.stderr
    assert "DROP TABLE auth.users;" in preview.stdout
    assert "would be refused" in preview.stderr

    done = await run(["migrate", "downgrade", "auth", "base"], migrated, tmp_path)

    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Refused: auth cannot go down")
    assert "installation.installations -> auth.users" in lines[0]
    assert lines[0].endswith("downgrade installation then catalog first")
    assert await migrations.current(migrated, ALL) == HEADS
    assert await tables(migrated, "auth") == before

    for name in ("installation", "catalog", "auth"):
        done = await run(["migrate", "downgrade", name, "base"], migrated, tmp_path)
        assert done.returncode == 0, done.stderr
    assert await tables(migrated, "auth") == {migrations.VERSION_TABLE}
