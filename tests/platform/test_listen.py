"""The LISTEN helper the relay and the activity hub share: one connection for every channel of a
process, opened with the first channel, notified at once, and again after it is killed and comes back."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.listen import Listener
from tests.support import terminate_connections

CHANNEL = "cathouse_test_listen"
OTHER = "cathouse_test_listen_other"


async def notify(engine: AsyncEngine, channel: str = CHANNEL) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"NOTIFY {channel}"))


async def connections(engine: AsyncEngine, application_name: str) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": application_name},
        )
    return int(found or 0)


async def test_a_listener_is_told_of_each_notification_and_of_every_reconnection(engine: AsyncEngine) -> None:
    told = asyncio.Queue[None]()
    listener = Listener(engine.url, application_name="cathouse-test-listen")
    listening = listener.listen(CHANNEL, lambda: told.put_nowait(None))
    task = asyncio.create_task(listener.run())
    try:
        async with asyncio.timeout(5):
            await listening.wait()
            await told.get()  # connected: look for what committed meanwhile
        await notify(engine)
        async with asyncio.timeout(5):
            await told.get()

        assert await terminate_connections(engine, "cathouse-test-listen") == 1
        async with asyncio.timeout(10):
            await told.get()  # connected again: look again
        assert listening.is_set()
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
    listener = Listener(url, application_name="cathouse-test-listen")
    dsn = make_url(listener._dsn)
    assert (dsn.drivername, dsn.database, dict(dsn.query)) == ("postgresql", "cathouse", {"host": "/run/pg"})
    assert listener._ssl == "require"


async def test_every_channel_of_a_process_shares_one_connection_opened_with_the_first(engine: AsyncEngine) -> None:
    name = "cathouse-test-listen-shared"
    outbox, entries = asyncio.Queue[None](), asyncio.Queue[None]()
    listener = Listener(engine.url, application_name=name)
    async with listener.running():
        await asyncio.sleep(0.2)
        assert await connections(engine, name) == 0, "nothing to listen for: no connection"

        async with asyncio.timeout(5):
            await listener.listen(CHANNEL, lambda: outbox.put_nowait(None)).wait()
            await outbox.get()
            # A channel added while connected: LISTENed on the same connection, told at once.
            await listener.listen(OTHER, lambda: entries.put_nowait(None)).wait()
            await entries.get()
        assert await connections(engine, name) == 1

        await notify(engine, OTHER)
        async with asyncio.timeout(5):
            await entries.get()
        assert outbox.empty(), "a channel is told only of its own notifications"
        await notify(engine, CHANNEL)
        async with asyncio.timeout(5):
            await outbox.get()
    assert await connections(engine, name) == 0


async def test_a_channel_that_only_rides_along_opens_no_connection_but_is_told_once_one_is_open(
    engine: AsyncEngine,
) -> None:
    name = "cathouse-test-listen-rider"
    rider, owner = asyncio.Queue[None](), asyncio.Queue[None]()
    listener = Listener(engine.url, application_name=name)
    async with listener.running():
        riding = listener.listen(OTHER, lambda: rider.put_nowait(None), connect=False)
        await asyncio.sleep(0.3)
        assert await connections(engine, name) == 0, "a rider alone opens no connection"
        assert not riding.is_set()
        assert rider.empty()

        async with asyncio.timeout(5):
            await listener.listen(CHANNEL, lambda: owner.put_nowait(None)).wait()
            await riding.wait()
            await rider.get()  # connected: the rider looks too
        assert await connections(engine, name) == 1
        await notify(engine, OTHER)
        async with asyncio.timeout(5):
            await rider.get()
