"""``cathouse migrate``: apply, print or roll back each component's migrations."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from cathouse.cli.database import database_settings
from cathouse.platform import migrations
from cathouse.platform.db import create_engine
from cathouse.platform.logging import configure_logging
from cathouse.platform.settings import Settings, get_settings
from cathouse.services import COMPONENTS

app = typer.Typer(help="Apply, print or roll back the database migrations.")
console = Console(stderr=True)


async def apply_all(settings: Settings) -> dict[str, tuple[str | None, str | None]]:
    engine = create_engine(settings, application_name="cathouse-migrate", pool_size=1)
    try:
        return await migrations.upgrade(engine, list(COMPONENTS.values()))
    finally:
        await engine.dispose()


def show_changes(changes: dict[str, tuple[str | None, str | None]]) -> None:
    table = Table("component", "from", "to", title="Migrations")
    for name, (before, after) in changes.items():
        table.add_row(name, before or "base", after or "base" if before != after else "[dim]up to date[/dim]")
    console.print(table)


@app.callback(invoke_without_command=True)
def migrate(
    ctx: typer.Context,
    sql: bool = typer.Option(False, "--sql", help="Print the SQL instead of applying it."),
) -> None:
    """Apply every pending migration: auth, catalog, installation, proxy, activity, events."""
    if ctx.invoked_subcommand is not None:
        return
    if sql:
        migrations.print_sql(list(COMPONENTS.values()))
        return
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    with database_settings(settings) as live:
        show_changes(asyncio.run(apply_all(live)))


@app.command()
def downgrade(
    service: str = typer.Argument(help=f"One of: {', '.join(COMPONENTS)}."),
    revision: str = typer.Argument(help="Target revision, `base`, or a relative step such as `-1`."),
) -> None:
    """Roll one component back to REVISION."""
    component = COMPONENTS.get(service)
    if component is None:
        raise typer.BadParameter(f"no component named {service!r}; choose from {', '.join(COMPONENTS)}")
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)

    async def go(live: Settings) -> None:
        engine = create_engine(live, application_name="cathouse-migrate", pool_size=1)
        try:
            await migrations.downgrade(engine, component, revision)
        finally:
            await engine.dispose()

    with database_settings(settings) as live:
        asyncio.run(go(live))
    console.print(f"{service} downgraded to {revision}")


@app.command()
def current() -> None:
    """Show each component's applied revision and its head."""
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)

    async def go(live: Settings) -> dict[str, str | None]:
        engine = create_engine(live, application_name="cathouse-migrate", pool_size=1)
        try:
            return await migrations.current(engine, list(COMPONENTS.values()))
        finally:
            await engine.dispose()

    with database_settings(settings) as live:
        revisions = asyncio.run(go(live))
    table = Table("component", "applied", "head")
    for name, rev in revisions.items():
        table.add_row(name, rev or "base", migrations.head(COMPONENTS[name]) or "base")
    console.print(table)
