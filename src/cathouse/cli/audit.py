"""``cathouse audit``: check the proxy's audit chain, and prune it to the retention."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import typer
from rich.table import Table

from cathouse.cli.database import database_settings, require_migrated
from cathouse.cli.output import err, out
from cathouse.platform.db import create_engine, sessionmaker
from cathouse.platform.logging import configure_logging
from cathouse.platform.settings import Settings, get_settings
from cathouse.proxy.audit import (
    ChainBroken,
    CheckpointReport,
    DirectoryStore,
    VerifyReport,
    prune_expired,
    store_at,
    verify,
    verify_with_checkpoints,
)
from cathouse.proxy.audit.signing import PublicKey, SigningKeyError, configured_public_key, from_b64url

app = typer.Typer(help="Check and prune the proxy's audit log.")


@app.command("verify")
def verify_chain(
    batch_size: int = typer.Option(1000, "--batch-size", min=1, max=100_000, help="Records read per query."),
    checkpoints: str | None = typer.Option(
        None,
        "--checkpoints",
        metavar="WHERE",
        help="Also check every signed checkpoint: a directory, `s3` (the configured bucket and "
        "CATHOUSE_AUDIT__S3_PREFIX) or s3://bucket/prefix.",
    ),
    public_keys: list[Path] = typer.Option(  # noqa: B008
        [],
        "--public-key",
        metavar="FILE",
        help="A PEM public key (as GET /api/v1/proxy/audit/public-key gives it; repeat for older keys). "
        "Default: the configured CATHOUSE_AUDIT__SIGNING_KEY's.",
    ),
    public_key_url: str | None = typer.Option(
        None,
        "--public-key-url",
        metavar="URL",
        help="Fetch the public key from a proxy's /api/v1/proxy/audit/public-key.",
    ),
    retention_days: int | None = typer.Option(
        None,
        "--retention-days",
        min=1,
        help="Records younger than this may not have been pruned. Default: CATHOUSE_PROXY__AUDIT_RETENTION_DAYS.",
    ),
) -> None:
    """Recompute every record's hash and link, from the oldest kept to the newest; with
    --checkpoints, check the chain against every checkpoint the proxy signed.

    Exits with 0 when the chain is intact, 1 with the first record or checkpoint that does not fit and why.
    """
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    store = keys = None
    if checkpoints is not None:
        try:
            store = store_at(checkpoints, settings)
            keys = _public_keys(settings, public_keys, public_key_url)
        except (ValueError, KeyError, TypeError, SigningKeyError, httpx.HTTPError) as exc:
            err.print(f"[red]Cannot check checkpoints:[/red] {exc}")
            raise typer.Exit(2) from None
        if isinstance(store, DirectoryStore) and not store.directory.is_dir():
            err.print(f"[red]Cannot check checkpoints:[/red] {store.where} is not a directory")
            raise typer.Exit(2)
    days = retention_days or settings.proxy.audit_retention_days

    async def go(live: Settings) -> tuple[VerifyReport, CheckpointReport | None]:
        await require_migrated(live)
        engine = create_engine(live, application_name="cathouse-cli", pool_size=1)
        try:
            if store is None or keys is None:
                return await verify(engine, batch_size=batch_size), None
            return await verify_with_checkpoints(
                engine,
                store,
                keys,
                retention_days=days,
                interval=settings.audit.checkpoint_seconds,
                batch_size=batch_size,
            )
        finally:
            await engine.dispose()

    with database_settings(settings) as live:
        report, against = asyncio.run(go(live))
    table = Table("records checked", "pruned through seq", "head seq", title="Audit chain")
    # Whole, never cut: it is the value to compare with a copy kept elsewhere.
    table.add_column("head hash (sha-256)", overflow="fold")
    table.add_row(str(report.checked), str(report.pruned_through_seq), str(report.last_seq), report.last_hash.hex())
    out.print(table)
    failed = False
    if report.problem is not None:
        problem = report.problem
        out.print(f"[red]Tampered:[/red] seq {problem.seq} ({problem.reason}): {problem.detail}")
        failed = True
    if against is not None and store is not None:
        out.print(
            f"Checkpoints in {store.where}: {against.total} ({against.matched} matched to the chain, "
            f"{against.pruned} before the prune anchor)."
        )
        if against.problem is not None:
            out.print(f"[red]Tampered:[/red] {against.problem}")
            failed = True
        elif against.total == 0:
            err.print(f"[yellow]No checkpoints in {store.where}:[/yellow] nothing to check the chain against.")
    if failed:
        raise typer.Exit(1)
    checked = f"{report.checked} records" + (f" and {against.total} checkpoints" if against is not None else "")
    out.print(f"[green]Intact:[/green] no problem, {checked} checked.")


def _public_keys(settings: Settings, files: list[Path], url: str | None) -> list[PublicKey]:
    found = [PublicKey.load(path) for path in files]
    if url is not None:
        answer = httpx.get(url, timeout=10, follow_redirects=True)
        answer.raise_for_status()
        body = answer.json()
        key = PublicKey.from_raw(from_b64url(str(body["public_key"])))
        if key.key_id != body.get("key_id"):
            raise SigningKeyError(f"{url} names key {body.get('key_id')} but serves key {key.key_id}")
        found.append(key)
    if not found:
        configured = configured_public_key(settings)
        if configured is None:
            raise SigningKeyError(
                "no public key: set CATHOUSE_AUDIT__SIGNING_KEY, or pass --public-key FILE or --public-key-url URL"
            )
        found.append(configured)
    return found


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
