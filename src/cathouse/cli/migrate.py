"""``cathouse migrate``: apply, print or roll back each component's migrations.

Results (tables, SQL) go to stdout; logs and refusals to stderr. Migrations run as the owner
(``CATHOUSE_MIGRATION_DATABASE_URL``, else ``CATHOUSE_DATABASE_URL``), and the services' role gets
its grants after them (:mod:`cathouse.platform.roles`).
"""

from __future__ import annotations

import asyncio
import sys

import typer
from rich.table import Table

from cathouse.cli.database import database_settings, grant_service_role
from cathouse.cli.output import out
from cathouse.platform import migrations
from cathouse.platform.db import create_engine
from cathouse.platform.logging import configure_logging
from cathouse.platform.roles import RoleError
from cathouse.platform.service import Component
from cathouse.platform.settings import Settings, get_settings
from cathouse.services import COMPONENTS

app = typer.Typer(help="Apply, print or roll back the database migrations.")


async def apply_all(settings: Settings) -> dict[str, tuple[str | None, str | None]]:
    """Every pending migration as the owner, then the services' role's grants."""
    engine = create_engine(settings, application_name="cathouse-migrate", pool_size=1, owner=True)
    try:
        changes = await migrations.upgrade(engine, list(COMPONENTS.values()))
    finally:
        await engine.dispose()
    await grant_service_role(settings)
    return changes


def migrate_or_exit(settings: Settings) -> dict[str, tuple[str | None, str | None]]:
    try:
        return asyncio.run(apply_all(settings))
    except RoleError as exc:
        typer.echo(f"Refused: {exc}", err=True)
        raise typer.Exit(1) from None


def show_changes(changes: dict[str, tuple[str | None, str | None]]) -> None:
    table = Table("component", "from", "to", title="Migrations")
    for name, (before, after) in changes.items():
        table.add_row(name, before or "base", after or "base" if before != after else "[dim]up to date[/dim]")
    out.print(table)


@app.callback(invoke_without_command=True)
def migrate(
    ctx: typer.Context,
    sql: bool = typer.Option(
        False, "--sql", help="Print the SQL instead of running it (here or before `downgrade`); nothing changes."
    ),
) -> None:
    """Apply every pending migration: auth, catalog, installation, proxy, activity, events.

    With --sql, print the SQL of every migration from base to head without a database.
    """
    ctx.ensure_object(dict)["sql"] = sql
    if ctx.invoked_subcommand is not None:
        if sql and ctx.invoked_subcommand != "downgrade":
            raise typer.BadParameter(f"--sql previews upgrades and downgrades; {ctx.invoked_subcommand} only reads")
        return
    if sql:
        migrations.print_sql(list(COMPONENTS.values()))
        return
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    with database_settings(settings) as live:
        show_changes(migrate_or_exit(live))


def _component(service: str) -> Component:
    component = COMPONENTS.get(service)
    if component is None:
        raise typer.BadParameter(f"no component named {service!r}; choose from {', '.join(COMPONENTS)}")
    return component


async def _read_only(
    live: Settings, component: Component, target: str
) -> tuple[str | None, list[migrations.ForeignKey]]:
    """The component's applied revision, and the foreign keys that would block going down to
    ``target``, read over connections that refuse every write."""
    engine = create_engine(live, application_name="cathouse-migrate", pool_size=1, owner=True, read_only=True)
    try:
        async with engine.connect() as conn:
            applied = await conn.run_sync(migrations.applied, component)
            keys = await migrations.blocking_foreign_keys(conn, component, target) if applied else []
        return applied, keys
    finally:
        await engine.dispose()


def _preview_downgrade(settings: Settings, component: Component, revision: str) -> None:
    if ":" in revision:
        migrations.downgrade_sql(component, revision, sys.stdout)
        return
    with database_settings(settings, read_only=True) as live:
        applied, keys = asyncio.run(_read_only(live, component, revision))
    if applied is None:
        typer.echo(f"{component.name} is at base: there is nothing to take down", err=True)
        return
    if keys:
        blocked = migrations.DowngradeBlocked(component, keys, list(COMPONENTS.values()))
        typer.echo(f"Note: as things stand this downgrade would be refused: {blocked}", err=True)
    migrations.downgrade_sql(component, f"{applied}:{revision}", sys.stdout)


# ignore_unknown_options: a relative target such as -1 is a value, not an unknown option.
@app.command(context_settings={"ignore_unknown_options": True})
def downgrade(
    ctx: typer.Context,
    service: str = typer.Argument(help=f"One of: {', '.join(COMPONENTS)}."),
    revision: str = typer.Argument(
        help="Target: a revision, `base`, or steps back such as `-1`; with --sql also `FROM:TO` (no database read)."
    ),
    sql: bool = typer.Option(
        False,
        "--sql",
        help="Print the SQL instead of running it; the starting revision is read from the database, read-only.",
    ),
) -> None:
    """Roll one component back to REVISION.

    Refused, with nothing changed, while another schema's foreign keys point into what it drops.
    """
    component = _component(service)
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    if sql or (ctx.obj or {}).get("sql"):
        _preview_downgrade(settings, component, revision)
        return

    async def go(live: Settings) -> str | None:
        engine = create_engine(live, application_name="cathouse-migrate", pool_size=1, owner=True)
        try:
            return await migrations.downgrade(engine, component, revision, list(COMPONENTS.values()))
        finally:
            await engine.dispose()

    with database_settings(settings) as live:
        try:
            now = asyncio.run(go(live))
        except migrations.DowngradeBlocked as exc:
            typer.echo(f"Refused: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"{service} is now at {now or 'base'}")


@app.command()
def current() -> None:
    """Show each component's applied revision and its head."""
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)

    async def go(live: Settings) -> dict[str, str | None]:
        engine = create_engine(live, application_name="cathouse-migrate", pool_size=1, owner=True, read_only=True)
        try:
            return await migrations.current(engine, list(COMPONENTS.values()))
        finally:
            await engine.dispose()

    with database_settings(settings, read_only=True) as live:
        revisions = asyncio.run(go(live))
    table = Table("component", "applied", "head")
    for name, rev in revisions.items():
        table.add_row(name, rev or "base", migrations.head(COMPONENTS[name]) or "base")
    out.print(table)
