"""The relay and the workers through a real broker: what ``cathouse up`` and ``cathouse relay`` run
when ``CATHOUSE_BROKER_URL`` is set."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform import workers
from cathouse.platform.db import sessionmaker
from cathouse.platform.outbox import record_event
from cathouse.platform.outbox.relay import Handler
from cathouse.platform.registry import Registry
from cathouse.platform.settings import Settings
from cathouse.platform.workers import Worker, WorkerFactory
from tests.platform.broker.conftest import Collector, forget, new_prefix, url_of


def worker(name: str | None, handlers: dict[str, list[Handler]]) -> WorkerFactory:
    @asynccontextmanager
    async def factory(settings: Settings, engine: AsyncEngine, registry: Registry) -> AsyncIterator[Worker]:
        yield Worker(handlers=handlers, name=name)

    return factory


async def write(engine: AsyncEngine, aggregate: str, count: int, event_type: str = "cat.updated") -> None:
    async with sessionmaker(engine)() as session:
        for n in range(count):
            record_event(session, aggregate_type="cat", aggregate_id=aggregate, event_type=event_type, payload={"n": n})
        await session.commit()


async def outbox(engine: AsyncEngine) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE published_at IS NULL) AS pending,"
                    " coalesce(sum(attempts) FILTER (WHERE published_at IS NULL), 0) AS attempts,"
                    " count(*) FILTER (WHERE published_at IS NULL AND available_at > now()) AS delayed"
                    " FROM events.outbox"
                )
            )
        ).one()


def broker_settings(make_settings: Callable[..., Settings], database_url: str, url: str, prefix: str) -> Settings:
    return make_settings(
        database_url,
        broker_url=url,
        events={
            "broker_prefix": prefix,
            "broker_partitions": 3,
            "broker_max_backoff": 0.3,
            "broker_publish_timeout": 0.5,
            "consumer_backoff": 0.05,
            "consumer_lease": 2.0,
        },
    )


@pytest.mark.parametrize("kind", ["nats", "redis"])
async def test_committed_events_reach_each_workers_handlers_through_the_broker(
    committed: AsyncEngine, make_settings: Callable[..., Settings], database_url: str, kind: str
) -> None:
    url, prefix = url_of(kind), new_prefix()
    everything, published_only = Collector(expect=9), Collector(expect=3)
    factories = [
        worker("feed", {"*": [everything]}),
        worker(None, {"cat.published": [published_only]}),  # named after its factory
    ]
    try:
        async with workers.running(
            broker_settings(make_settings, database_url, url, prefix), factories, registry=Registry()
        ):
            await write(committed, "a", 3)
            await write(committed, "b", 3)
            await write(committed, "c", 3, event_type="cat.published")
            await everything.wait()
            await published_only.wait()
            await asyncio.sleep(0.3)
    finally:
        await forget(kind, url, prefix)
    assert everything.by_aggregate() == {"a": [0, 1, 2], "b": [0, 1, 2], "c": [0, 1, 2]}
    assert [e.aggregate_id for e in published_only.events] == ["c", "c", "c"], "each worker gets its event types"
    assert (await outbox(committed)).pending == 0


@pytest.mark.parametrize("kind", ["nats", "redis"])
async def test_two_relays_and_two_consumers_lose_nothing_double_nothing_and_keep_order(
    committed: AsyncEngine, make_settings: Callable[..., Settings], database_url: str, kind: str
) -> None:
    url, prefix = url_of(kind), new_prefix()
    aggregates = [f"cat-{i}" for i in range(12)]
    timeline = Collector(expect=12 * 20)  # both members append here, in the order they handle
    settings = broker_settings(make_settings, database_url, url, prefix)
    try:
        async with (
            workers.running(settings, [worker("feed", {"*": [timeline]})], registry=Registry()),
            workers.running(settings, [worker("feed", {"*": [timeline]})], registry=Registry()),
        ):
            await asyncio.gather(*(write(committed, aggregate, 20) for aggregate in aggregates))
            await timeline.wait(within=30)
            await asyncio.sleep(0.5)  # anything doubled would arrive now
    finally:
        await forget(kind, url, prefix)
    ids = [e.id for e in timeline.events]
    assert len(ids) == len(set(ids)) == 12 * 20
    assert timeline.by_aggregate() == {a: list(range(20)) for a in aggregates}
