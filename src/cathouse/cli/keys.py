"""``cathouse keys``: signing-key rotation."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import typer
from rich.console import Console

from cathouse.auth.keys import rotate
from cathouse.cli.database import database_settings, require_migrated
from cathouse.platform.db import create_engine, sessionmaker
from cathouse.platform.logging import configure_logging
from cathouse.platform.settings import Settings, get_settings

app = typer.Typer(help="Rotate keys.")
console = Console(stderr=True)


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
    console.print(f"New signing key {kid}; the previous one verifies for {seconds} s more.")
