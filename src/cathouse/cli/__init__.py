"""The ``cathouse`` command: one Typer root, a module per area."""

from __future__ import annotations

import typer

import cathouse
from cathouse.cli import activity, audit, catalog, db, keys, migrate, run, users

app = typer.Typer(
    name="cathouse",
    help="Cat House: the backend of a marketplace for gamification integrations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cathouse {cathouse.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Run, migrate and administer Cat House."""


run.register(app)
app.add_typer(migrate.app, name="migrate")
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(keys.app, name="keys")
app.add_typer(catalog.app, name="catalog")
app.add_typer(audit.app, name="audit")
app.add_typer(activity.app, name="activity")


def main() -> None:
    app()
