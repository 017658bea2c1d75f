"""``cathouse keys``: signing-key rotation, and rotation of the master-key versions that wrap
installations' data keys."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import typer
from rich.table import Table

from cathouse.auth.keys import rotate
from cathouse.cli.database import database_settings, require_migrated
from cathouse.cli.output import err, out
from cathouse.installation.keyring import Keyring, KeyringError, RotationReport
from cathouse.platform.db import create_engine, sessionmaker
from cathouse.platform.logging import configure_logging
from cathouse.platform.settings import Settings, get_settings

app = typer.Typer(help="Rotate keys.")
T = TypeVar("T")


@app.command("rotate-signing")
def rotate_signing(
    overlap: int = typer.Option(
        0, min=0, help="Seconds the previous key keeps verifying (default: a token lifetime plus leeway)."
    ),
) -> None:
    """Add a new signing key. New tokens use it at once; tokens signed by the previous key keep
    verifying until it retires."""
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    seconds = overlap or settings.tokens.access_token_ttl + settings.tokens.leeway + 60

    async def go(live: Settings) -> str:
        await require_migrated(live)
        engine = create_engine(live, application_name="cathouse-cli", pool_size=1)
        try:
            async with sessionmaker(engine)() as session:
                key = await rotate(session, live.master_key_value(), timedelta(seconds=seconds))
                await session.commit()
                return key.kid
        finally:
            await engine.dispose()

    with database_settings(settings) as live:
        kid = asyncio.run(go(live))
    out.print(f"New signing key {kid}; the previous one verifies for {seconds} s more.")


def _with_keyring(action: Callable[[Keyring], Awaitable[T]]) -> T:
    """Run ``action`` on a loaded keyring; a master key that does not fit stops with exit code 1."""
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)

    async def go(live: Settings) -> T:
        await require_migrated(live)
        engine = create_engine(live, application_name="cathouse-cli", pool_size=1)
        try:
            keyring = Keyring(sessionmaker(engine), live.master_key_value())
            await keyring.load()
            return await action(keyring)
        finally:
            await engine.dispose()

    try:
        with database_settings(settings) as live:
            return asyncio.run(go(live))
    except KeyringError as exc:
        err.print(f"[red]Refused:[/red] {exc}")
        raise typer.Exit(1) from None


@app.command("rotate")
def rotate_master(
    batch_size: int = typer.Option(200, "--batch-size", min=1, help="Data keys re-wrapped per transaction."),
) -> None:
    """Make a new master-key version current and re-wrap every installation's data key under it.

    Secrets are not re-encrypted, and the platform keeps serving meanwhile.

    A rotation that was cut short is finished instead of starting another one.

    Exits with 1 while data keys remain under an older version: run it again.

    Afterwards, erase the old version with `cathouse keys retire VERSION`.
    """

    async def action(keyring: Keyring) -> RotationReport:
        return await keyring.rotate(batch_size=batch_size)

    report = _with_keyring(action)
    table = Table("master-key version", "new", "data keys re-wrapped", "remaining", title="Master-key rotation")
    table.add_row(
        str(report.version),
        "yes" if report.created else "no (finished an earlier rotation)",
        str(report.rewrapped),
        f"[red]{report.remaining}[/red]" if report.remaining else "[green]0[/green]",
    )
    out.print(table)
    if report.remaining:
        err.print(
            f"[yellow]{report.remaining} data keys are still under an older version; "
            "run `cathouse keys rotate` again.[/yellow]"
        )
        raise typer.Exit(1)
    out.print(f"Every data key is under version {report.version}; older versions can be retired.")


@app.command("retire")
def retire(
    version: int = typer.Argument(..., min=1, metavar="VERSION", help="The master-key version to retire."),
) -> None:
    """Retire a master-key version: its key is erased from the database for good.

    Refused (exit code 1) for the current version and for one that still wraps a data key: rotate first.
    """

    async def action(keyring: Keyring) -> None:
        await keyring.retire(version)

    _with_keyring(action)
    out.print(f"Master-key version {version} is retired.")
