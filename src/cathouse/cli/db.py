"""``cathouse db``: the database roles, for a server whose roles are managed by hand."""

from __future__ import annotations

import typer

from cathouse.platform import roles
from cathouse.platform.settings import get_settings
from cathouse.services import COMPONENTS

app = typer.Typer(help="The database roles: who owns the schemas, who the services connect as.")


@app.command("grant-sql")
def grant_sql(
    role: str | None = typer.Option(
        None,
        "--role",
        help="The services' role (default: the user of CATHOUSE_DATABASE_URL when "
        f"CATHOUSE_MIGRATION_DATABASE_URL names another, else {roles.SERVICE_ROLE}).",
    ),
) -> None:
    """Print the SQL that creates the services' role and gives it least privilege.

    Run it as the owner of the schemas, after `cathouse migrate`. It connects to nothing.
    """
    name = role or roles.service_role(get_settings()) or roles.SERVICE_ROLE
    typer.echo(roles.grant_script(name, list(COMPONENTS.values())), nl=False)
