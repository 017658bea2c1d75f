"""``cathouse activity``: the activity read model."""

from __future__ import annotations

import asyncio

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cathouse.activity.readmodel import Rebuilding
from cathouse.activity.rebuild import RebuildReport, rebuild
from cathouse.activity.stores import open_read_model
from cathouse.cli.database import database_settings, require_migrated
from cathouse.cli.output import err, out
from cathouse.platform.db import create_engine
from cathouse.platform.logging import configure_logging
from cathouse.platform.settings import Settings, get_settings

app = typer.Typer(help="The activity feeds and statistics.")


@app.command("rebuild")
def rebuild_command(
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, max=10_000, help="Events per batch (default: activity.rebuild_batch_size)."
    ),
) -> None:
    """Empty the read model (PostgreSQL, or Redis when CATHOUSE_REDIS_URL is set) and apply every
    event of the outbox again, oldest first. Live consumers wait meanwhile, and catch up after."""
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    size = batch_size or settings.activity.rebuild_batch_size

    async def go(live: Settings, progress: Progress) -> RebuildReport:
        await require_migrated(live)
        task = progress.add_task("Rebuilding", total=None)
        # Emptying the read model is a TRUNCATE, which only the owner may do.
        engine = create_engine(live, application_name="cathouse-cli", pool_size=2, owner=True)
        model = open_read_model(live, engine)
        try:
            return await rebuild(
                model,
                engine,
                batch_size=size,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        finally:
            await model.close()
            await engine.dispose()

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with database_settings(settings) as live, Progress(*columns, console=err) as progress:
            report = asyncio.run(go(live, progress))
    except Rebuilding as exc:
        err.print(f"[red]Refused:[/red] {exc}")
        raise typer.Exit(1) from None
    table = Table("events read", "applied", "entries", "skipped", "seconds", title="Activity read model rebuilt")
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(report.skipped.items())) or "0"
    table.add_row(str(report.events), str(report.applied), str(report.entries), skipped, f"{report.seconds:.1f}")
    out.print(table)
