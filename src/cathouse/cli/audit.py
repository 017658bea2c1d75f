"""``cathouse audit``: check the proxy's audit chain, and prune it to the retention."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import typer
from rich.table import Table

from cathouse.cli.database import database_settings, require_migrated
from cathouse.cli.output import err, out
from cathouse.platform.db import create_engine, sessionmaker
from cathouse.platform.logging import configure_logging
from cathouse.platform.settings import Settings, get_settings
from cathouse.proxy.audit import ChainBroken, VerifyReport, prune_expired, verify

app = typer.Typer(help="Check and prune the proxy's audit log.")


@app.command("verify")
def verify_chain(
    batch_size: int = typer.Option(1000, "--batch-size", min=1, max=100_000, help="Records read per query."),
) -> None:
    """Recompute every record's hash and link, from the oldest kept to the newest.

    Exits with 0 when the chain is intact, 1 with the first record that does not fit and why.
    """
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)

    async def go(live: Settings) -> VerifyReport:
        await require_migrated(live)
        engine = create_engine(live, application_name="cathouse-cli", pool_size=1)
        try:
            return await verify(engine, batch_size=batch_size)
        finally:
            await engine.dispose()

    with database_settings(settings) as live:
        report = asyncio.run(go(live))
    table = Table("records checked", "pruned through seq", "head seq", title="Audit chain")
    # Whole, never cut: it is the value to compare with a copy kept elsewhere.
    table.add_column("head hash (sha-256)", overflow="fold")
    table.add_row(str(report.checked), str(report.pruned_through_seq), str(report.last_seq), report.last_hash.hex())
    out.print(table)
    if report.problem is not None:
        problem = report.problem
        out.print(f"[red]Tampered:[/red] seq {problem.seq} ({problem.reason}): {problem.detail}")
        raise typer.Exit(1)
    out.print(f"[green]Intact:[/green] no problem, {report.checked} records checked.")


@app.command("prune")
def prune_records(
    older_than_days: int | None = typer.Option(
        None, "--older-than-days", min=1, help="Default: the retention setting (proxy.audit_retention_days)."
    ),
) -> None:
    """Delete the oldest records past the retention; the rest still verifies.

    Runs as the owner (CATHOUSE_MIGRATION_DATABASE_URL): the services' role may not delete audit
    records. Schedule it (daily, say) where the services' role is kept apart.

    Refused (exit code 1) when the records to delete do not fit the chain: they are evidence.
    """
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    days = older_than_days or settings.proxy.audit_retention_days

    async def go(live: Settings) -> int:
        await require_migrated(live)
        # Audit records are append-only for the services' role: pruning runs as the owner.
        engine = create_engine(live, application_name="cathouse-audit-prune", pool_size=1, owner=True)
        try:
            return await prune_expired(sessionmaker(engine), days)
        finally:
            await engine.dispose()

    cutoff = datetime.now(UTC) - timedelta(days=days)
    try:
        with database_settings(settings) as live:
            pruned = asyncio.run(go(live))
    except ChainBroken as exc:
        err.print(f"[red]Refused:[/red] seq {exc.problem.seq} ({exc.problem.reason}): {exc.problem.detail}")
        raise typer.Exit(1) from None
    out.print(f"Pruned {pruned} audit records older than {days} days (before {cutoff:%Y-%m-%d %H:%M} UTC).")
