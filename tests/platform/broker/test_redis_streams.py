from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform import workers
from cathouse.platform.broker.base import ConsumerOptions
from cathouse.platform.broker.redis_streams import RedisStreamsBroker
from cathouse.platform.outbox.relay import Event
from cathouse.platform.registry import Registry
from cathouse.platform.settings import Settings
from tests.platform.broker.conftest import Collector, PrivateServer, event, forget, new_prefix
from tests.platform.broker.test_workers import broker_settings, outbox, worker, write


async def test_a_redis_outage_keeps_events_in_the_outbox_and_they_drain_after(
    committed: AsyncEngine,
    make_settings: Callable[..., Settings],
    database_url: str,
    private_redis: tuple[str, PrivateServer],
) -> None:
    url, run = private_redis
    got = Collector(expect=10)
    settings = broker_settings(make_settings, database_url, url, new_prefix())
    with run() as redis_server:
        async with workers.running(settings, [worker("feed", {"*": [got]})], registry=Registry()):
            await write(committed, "before", 2)
            await got.wait_for(2)
            redis_server.terminate()
            redis_server.wait()

            await write(committed, "during", 8)
            await asyncio.sleep(2)
            state = await outbox(committed)
            assert state.pending == 8, "nothing is lost or marked sent while Redis is away"
            assert state.attempts >= 1, "the failed publishes are counted"
            assert state.delayed == 0, "an outage does not push events into a backoff of their own"

            with run():
                await got.wait(within=30)
                await asyncio.sleep(0.3)
    # At least once: an ack the dying server never got brings an event again; dedupe by id and
    # every event is there, in order.
    assert got.deduplicated() == {"before": [0, 1], "during": list(range(8))}
    assert (await outbox(committed)).pending == 0


async def test_a_member_that_dies_mid_event_hands_it_to_the_next_one(redis_url: str) -> None:
    prefix = new_prefix()
    stuck = asyncio.Event()

    async def hangs(e: Event) -> None:
        stuck.set()
        await asyncio.Event().wait()  # never returns: the process "dies" in here

    survivor = Collector(expect=3)
    publisher = RedisStreamsBroker(redis_url, prefix=prefix, partitions=1)
    short = ConsumerOptions(backoff=0.05, max_backoff=0.5, lease=1.5)
    doomed = RedisStreamsBroker(redis_url, prefix=prefix, partitions=1, options=short)
    heir = RedisStreamsBroker(redis_url, prefix=prefix, partitions=1, options=short)
    doomed.subscribe("g", hangs)
    heir.subscribe("g", survivor)
    try:
        await publisher.start()
        await doomed.start()
        for n in range(3):
            await publisher.publish(event("x", n))
        async with asyncio.timeout(10):
            await stuck.wait()
        await heir.start()
        # Dies without a word: its tasks end, its leases and membership stay until they expire.
        await doomed._loops.stop(grace=0)
        await doomed._readers.stop(grace=0)
        assert doomed._redis is not None
        await doomed._redis.aclose()
        await survivor.wait(within=20)
        assert survivor.by_aggregate() == {"x": [0, 1, 2]}, "the unacknowledged event first, then the rest"
        assert survivor.events[0].payload["n"] == 0
    finally:
        for broker in (publisher, heir):
            await broker.stop()
        await forget("redis", redis_url, prefix)
