"""The consumer as the relay drives it: only committed events arrive, each applied once; the lag
is measured."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import cast

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.activity.consumer import Consumer, LagProbe
from cathouse.activity.readmodel import Feed, Outcome, ReadModel
from cathouse.activity.stores import open_read_model
from cathouse.contracts.events import auth as users
from cathouse.contracts.events import catalog as cats
from cathouse.platform.db import sessionmaker
from cathouse.platform.outbox import record_event
from cathouse.platform.outbox.relay import Event
from tests.activity.conftest import Platform, event
from tests.activity.test_stream import new_version
from tests.installation.conftest import People, publish


def published(cat_id: uuid.UUID, slug: str) -> dict[str, object]:
    return {
        "cat_id": str(cat_id),
        "slug": slug,
        "name": "Ghost",
        "category": "points",
        "publisher_id": None,
        "version": None,
    }


async def test_a_transaction_that_fails_after_writing_its_event_leaves_no_event_and_no_entry(live: Platform) -> None:
    doomed, kept = uuid.uuid4(), uuid.uuid4()
    sessions = sessionmaker(live.engine)

    async def change_that_fails() -> None:
        async with sessions() as session, session.begin():
            record_event(
                session,
                aggregate_type="cat",
                aggregate_id=str(doomed),
                event_type=cats.CatPublished.type,
                payload=published(doomed, "doomed"),
            )
            await session.flush()
            written = await session.scalar(
                text("SELECT count(*) FROM events.outbox WHERE aggregate_id = :id"), {"id": str(doomed)}
            )
            assert written == 1  # the row was there, inside the transaction
            raise RuntimeError("the change failed after the outbox row was written")

    with pytest.raises(RuntimeError, match="after the outbox row"):
        await change_that_fails()
    # A later transaction that commits shows the consumer was running all along.
    async with sessions() as session, session.begin():
        record_event(
            session,
            aggregate_type="cat",
            aggregate_id=str(kept),
            event_type=cats.CatPublished.type,
            payload=published(kept, "kept"),
        )
    await live.settle()

    async with live.engine.connect() as conn:
        rows = await conn.scalar(
            text("SELECT count(*) FROM events.outbox WHERE aggregate_id = :id"), {"id": str(doomed)}
        )
    assert rows == 0
    entries = await live.model.page(Feed.everything(), before=None, limit=100)
    assert [e.cat_id for e in entries] == [kept]
    assert await live.model.page(Feed.cat(doomed), before=None, limit=100) == []
    assert (await live.model.platform_counters())["cats_published"] == 1


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_handler_applies_an_event_once_however_often_it_comes(store: ReadModel) -> None:
    consumer = Consumer(store)
    once = event(users.UserRegistered.type, uuid.uuid4(), user_id=uuid.uuid4(), display_name="Bo")
    applied = sample("cathouse_activity_events_applied_total", event_type=users.UserRegistered.type)
    duplicates = sample("cathouse_activity_events_skipped_total", reason="duplicate")
    unknown = sample("cathouse_activity_events_skipped_total", reason="unknown_type")

    for _ in range(3):
        await consumer.on_event(once)
    await consumer.on_event(event("user.teleported", uuid.uuid4(), user_id=uuid.uuid4()))

    assert sample("cathouse_activity_events_applied_total", event_type=users.UserRegistered.type) == applied + 1
    assert sample("cathouse_activity_events_skipped_total", reason="duplicate") == duplicates + 2
    assert sample("cathouse_activity_events_skipped_total", reason="unknown_type") == unknown + 1
    assert (await store.platform_counters())["users_registered"] == 1
    assert 0 <= sample("cathouse_activity_lag_seconds") < 60


async def test_a_newer_version_or_a_refused_payload_is_acknowledged_skipped_and_counted(store: ReadModel) -> None:
    # As cathouse.contracts.events documents: skipped and counted, never retried (on_event returns).
    consumer = Consumer(store)
    user = uuid.uuid4()
    newer = event(
        users.UserRegistered.type,
        user,
        schema_version=users.UserRegistered.schema_version + 1,
        user_id=user,
        display_name="From the future",
    )
    refused = event(users.UserRegistered.type, user, user_id="not-a-uuid")
    before = {r: sample("cathouse_activity_events_skipped_total", reason=r) for r in ("unknown_version", "malformed")}

    await consumer.on_event(newer)
    await consumer.on_event(refused)

    after = {r: sample("cathouse_activity_events_skipped_total", reason=r) for r in before}
    assert after == {r: n + 1 for r, n in before.items()}
    assert await store.page(Feed.everything(), before=None, limit=10) == []
    assert (await store.platform_counters())["users_registered"] == 0


async def test_the_lag_counts_the_events_still_waiting(committed: AsyncEngine) -> None:
    probe = LagProbe(committed, interval=1.0)
    assert await probe.measure() == (0, 0.0)
    async with sessionmaker(committed)() as session, session.begin():
        for _ in range(3):
            user = str(uuid.uuid4())
            record_event(
                session,
                aggregate_type="user",
                aggregate_id=user,
                event_type=users.UserRegistered.type,
                payload={"user_id": user},
            )
    waiting, age = await probe.measure()
    assert waiting == 3
    assert age >= 0
    assert sample("cathouse_activity_lag_events") == 3


async def test_a_consumer_held_back_falls_behind_then_catches_up(live: Platform, people: People) -> None:
    slug = await publish(live.api, people)
    await live.settle()
    probe = LagProbe(live.engine, interval=1.0)
    holder = open_read_model(live.settings, live.engine)
    await holder.start_rebuild()  # the live consumer is refused while this lasts
    try:
        await new_version(live, people, slug, "1.1.0")
        deadline = asyncio.get_running_loop().time() + 5
        while (await probe.measure())[0] == 0:
            assert asyncio.get_running_loop().time() < deadline, "the event never waited"
            await asyncio.sleep(0.05)
        waiting, age = await probe.measure()
        assert waiting >= 1
        assert age > 0
        assert sample("cathouse_activity_lag_events") >= 1
    finally:
        await holder.finish_rebuild()
        await holder.close()
    await live.settle(within=20)  # the relay retries with backoff

    assert (await probe.measure())[0] == 0
    assert sample("cathouse_activity_lag_events") == 0
    entries = await live.model.page(Feed.public(), before=None, limit=10)
    assert [e.data.get("version") for e in entries] == ["1.1.0"]


class Poisoned:
    """The store, failing every apply that includes one event (as a write it breaks would)."""

    def __init__(self, model: ReadModel, poison: str) -> None:
        self.model = model
        self.poison = poison
        self.batches: list[int] = []

    async def apply(self, events: Sequence[Event], *, rebuild: bool = False) -> list[Outcome]:
        self.batches.append(len(events))
        if any(e.id == self.poison for e in events):
            raise ConnectionResetError("the store refused the poisoned event")
        return await self.model.apply(events, rebuild=rebuild)


def registered() -> Event:
    return event(users.UserRegistered.type, uuid.uuid4(), user_id=uuid.uuid4(), display_name="Bo")


async def test_events_in_flight_together_are_applied_together_each_once(store: ReadModel) -> None:
    counting = Poisoned(store, poison="")
    consumer = Consumer(cast(ReadModel, counting))
    first, second, third = registered(), registered(), registered()
    duplicates = sample("cathouse_activity_events_skipped_total", reason="duplicate")

    # One call per aggregate at a time, as the relay and the brokers make them; one comes twice.
    await asyncio.gather(*(consumer.on_event(e) for e in (first, second, first, third)))

    assert counting.batches == [4]
    assert (await store.platform_counters())["users_registered"] == 3
    assert sample("cathouse_activity_events_skipped_total", reason="duplicate") == duplicates + 1
    assert len(await store.page(Feed.everything(), before=None, limit=10)) == 3


async def test_a_poisoned_event_in_a_batch_fails_alone_and_the_others_are_applied(store: ReadModel) -> None:
    good = [registered() for _ in range(4)]
    bad = registered()
    consumer = Consumer(cast(ReadModel, Poisoned(store, poison=bad.id)))

    results = await asyncio.gather(*(consumer.on_event(e) for e in [*good[:2], bad, *good[2:]]), return_exceptions=True)

    assert [type(r).__name__ for r in results] == [
        "NoneType",
        "NoneType",
        "ConnectionResetError",
        "NoneType",
        "NoneType",
    ]
    assert (await store.platform_counters())["users_registered"] == 4
    entries = await store.page(Feed.everything(), before=None, limit=10)
    assert {e.event_id for e in entries} == {e.id for e in good}
