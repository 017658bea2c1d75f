"""The LISTEN helper the relay and the activity hub share: notified at once, and again after its
connection is killed and comes back."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.listen import Listener

CHANNEL = "cathouse_test_listen"


async def notify(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"NOTIFY {CHANNEL}"))


async def test_a_listener_is_told_of_each_notification_and_of_every_reconnection(engine: AsyncEngine) -> None:
    told = asyncio.Queue[None]()
    listener = Listener(engine.url, CHANNEL, lambda: told.put_nowait(None), application_name="cathouse-test-listen")
    task = asyncio.create_task(listener.run())
    try:
        async with asyncio.timeout(5):
            await listener.listening.wait()
            await told.get()  # connected: look for what committed meanwhile
        await notify(engine)
        async with asyncio.timeout(5):
            await told.get()

        async with engine.connect() as conn:
            killed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 'cathouse-test-listen' AND datname = current_database()"
                )
            )
        assert killed == 1
        async with asyncio.timeout(10):
            await told.get()  # connected again: look again
        assert listener.listening.is_set()
        await notify(engine)
        async with asyncio.timeout(5):
            await told.get()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
