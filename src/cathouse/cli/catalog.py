"""``cathouse catalog``: feed the catalog from a directory of cat manifests."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

import cathouse
from cathouse.catalog.assets.storage import storage_from_settings
from cathouse.catalog.manifests import ManifestProblem, validate_directory
from cathouse.catalog.sync import CatalogSync, SyncOutcome
from cathouse.cli.database import database_settings, require_migrated
from cathouse.cli.output import err, out
from cathouse.contracts.reads import AccountReader
from cathouse.platform.db import create_engine, sessionmaker
from cathouse.platform.logging import configure_logging
from cathouse.platform.settings import Settings, get_settings
from cathouse.services import registry

app = typer.Typer(help="Feed the catalog from manifest files.")
Directory = Annotated[Path, typer.Argument(exists=True, file_okay=False, help="One folder per cat.")]
STYLES = {"created": "green", "updated": "cyan", "unchanged": "dim", "failed": "red", "orphaned": "yellow"}


def demo_directory() -> Path:
    """The example cats: beside the working directory, or in the source tree this runs from."""
    for candidate in (Path.cwd() / "examples" / "cats", Path(cathouse.__file__).parents[2] / "examples" / "cats"):
        if candidate.is_dir():
            return candidate
    raise typer.BadParameter("the example cats (examples/cats) are not here; run from the repository's root")


async def sync_directory(settings: Settings, directory: Path, *, show_progress: bool = True) -> list[SyncOutcome]:
    """Sync ``directory`` into the catalog, in one transaction, with a progress bar."""
    engine = create_engine(settings, application_name="cathouse-cli", pool_size=1)
    storage = storage_from_settings(settings)
    folders = await asyncio.to_thread(_folders, directory)
    progress = Progress(
        TextColumn("syncing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=err,
        disable=not show_progress,
    )
    try:
        with progress:
            task = progress.add_task("", total=folders)

            def advance(outcome: SyncOutcome) -> None:
                progress.update(task, advance=1, description=outcome.folder)

            async with sessionmaker(engine)() as session:
                outcomes = await CatalogSync(session, settings, storage, registry().get(AccountReader)).run(
                    directory, progress=advance
                )
                await session.commit()
    finally:
        await storage.close()
        await engine.dispose()
    return outcomes


def _folders(directory: Path) -> int:
    return sum(1 for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def print_report(outcomes: list[SyncOutcome]) -> None:
    table = Table("folder", "slug", "result", "problem", title="Catalog sync")
    for outcome in outcomes:
        problem = _describe(outcome.problems)
        style = STYLES[outcome.result]
        table.add_row(outcome.folder, outcome.slug or "", f"[{style}]{outcome.result}[/{style}]", problem)
    out.print(table)
    counts: Counter[str] = Counter(o.result for o in outcomes)
    out.print(", ".join(f"{counts.get(result, 0)} {result}" for result in STYLES))


def _describe(problems: list[ManifestProblem]) -> str:
    if not problems:
        return ""
    first = problems[0]
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{first.loc or first.file}: {first.message}{more}"


@app.command()
def sync(directory: Directory) -> None:
    """Create, update and orphan cats so the catalog says what DIRECTORY says. Unchanged cats are not touched."""
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)

    async def go(live: Settings) -> list[SyncOutcome]:
        await require_migrated(live)
        return await sync_directory(live, directory)

    with database_settings(settings) as live:
        outcomes = asyncio.run(go(live))
    print_report(outcomes)
    if any(o.result == "failed" for o in outcomes):
        raise typer.Exit(1)


@app.command()
def validate(directory: Directory) -> None:
    """Check every manifest and image of DIRECTORY without touching the catalog."""
    problems = validate_directory(directory)
    if not problems:
        out.print(f"[green]Every manifest in {directory} is valid.[/green]")
        return
    table = Table("file", "field", "problem", title=f"{len(problems)} problems")
    for problem in problems:
        table.add_row(problem.file, problem.loc, problem.message)
    out.print(table)
    raise typer.Exit(1)
