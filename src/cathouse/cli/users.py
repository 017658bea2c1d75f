"""``cathouse users``: account administration from the command line."""

from __future__ import annotations

import asyncio
import sys

import typer
from email_validator import EmailNotValidError, validate_email

from cathouse.auth.admin import create_admin as make_admin
from cathouse.auth.passwords import Passwords, password_problem
from cathouse.cli.database import database_settings, require_migrated
from cathouse.cli.output import out
from cathouse.platform.db import create_engine, sessionmaker
from cathouse.platform.logging import configure_logging
from cathouse.platform.settings import Settings, get_settings

app = typer.Typer(help="Manage accounts.")


@app.command("create-admin")
def create_admin(
    email: str = typer.Option(..., prompt=True, help="The admin's email."),
    display_name: str = typer.Option("Admin", help="The name shown to others."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    """Create the first admin (or make an existing account an admin)."""
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise typer.BadParameter(str(exc), param_hint="--email") from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    problem = password_problem(password, context=(email, display_name))
    if problem:
        raise typer.BadParameter(f"the password {problem}", param_hint="password")

    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)

    async def go(live: Settings) -> tuple[str, bool]:
        await require_migrated(live)
        engine = create_engine(live, application_name="cathouse-cli", pool_size=1)
        try:
            async with sessionmaker(engine)() as session:
                user, created = await make_admin(
                    session, Passwords(live.auth), email=email, password=password, display_name=display_name
                )
                await session.commit()
                return str(user.id), created
        finally:
            await engine.dispose()

    with database_settings(settings) as live:
        user_id, created = asyncio.run(go(live))
    out.print(f"{'Created' if created else 'Promoted'} admin {email} ({user_id})")
