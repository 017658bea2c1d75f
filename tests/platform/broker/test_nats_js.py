from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform import workers
from cathouse.platform.broker.nats_js import NatsBroker
from cathouse.platform.registry import Registry
from cathouse.platform.settings import Settings
from tests.platform.broker.conftest import Collector, PrivateServer, event, forget, new_prefix
from tests.platform.broker.test_workers import broker_settings, outbox, worker, write


async def test_a_nats_outage_keeps_events_in_the_outbox_and_they_drain_after(
    committed: AsyncEngine,
    make_settings: Callable[..., Settings],
    database_url: str,
    private_nats: tuple[str, PrivateServer],
) -> None:
    url, run = private_nats
    got = Collector(expect=10)
    settings = broker_settings(make_settings, database_url, url, new_prefix())
    with run() as nats_server:
        async with workers.running(settings, [worker("feed", {"*": [got]})], registry=Registry()):
            await write(committed, "before", 2)
            await got.wait_for(2)
            nats_server.terminate()
            nats_server.wait()

            await write(committed, "during", 8)
            await asyncio.sleep(2)
            state = await outbox(committed)
            assert state.pending == 8, "nothing is lost or marked sent while NATS is away"
            assert state.attempts >= 1, "the failed publishes are counted"
            assert state.delayed == 0, "an outage does not push events into a backoff of their own"

            with run():
                await got.wait(within=30)
                await asyncio.sleep(0.5)
    # At least once: an ack the dying server never got brings an event again; dedupe by id and
    # every event is there, in order.
    assert got.deduplicated() == {"before": [0, 1], "during": list(range(8))}
    assert (await outbox(committed)).pending == 0


async def test_a_republished_event_is_stored_once(nats_url: str) -> None:
    prefix = new_prefix()
    broker = NatsBroker([nats_url], prefix=prefix, partitions=2)
    got = Collector(expect=1)
    broker.subscribe("g", got)
    try:
        await broker.start()
        e = event("a", 0)
        await broker.publish(e)
        await broker.publish(e)  # a relay that crashed before marking it published sends it again
        await got.wait()
        await asyncio.sleep(0.5)
        assert [x.id for x in got.events] == [e.id]
    finally:
        await broker.stop()
        await forget("nats", nats_url, prefix)
