"""The LISTEN helper the relay and the activity hub share: notified at once, and again after its
connection is killed and comes back."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.listen import Listener
from tests.support import terminate_connections

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

        assert await terminate_connections(engine, "cathouse-test-listen") == 1
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


def test_the_listener_goes_where_the_url_says_even_through_a_socket_directory() -> None:
    # The embedded server's URL names a socket directory in its query; the engine's own options
    # (and the ssl setting, passed apart) are not libpq's and stay out of the DSN.
    url = make_url("postgresql+asyncpg://app:pw@/cathouse?host=/run/pg&ssl=require&prepared_statement_cache_size=0")
    listener = Listener(url, CHANNEL, lambda: None, application_name="cathouse-test-listen")
    dsn = make_url(listener._dsn)
    assert (dsn.drivername, dsn.database, dict(dsn.query)) == ("postgresql", "cathouse", {"host": "/run/pg"})
    assert listener._ssl == "require"
