from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.context import request_id_var
from cathouse.platform.db import sessionmaker
from cathouse.platform.outbox import record_event
from cathouse.platform.outbox.relay import Event, InProcessPublisher, PublisherUnavailable, Relay
from tests.support import terminate_connections


class Recorder:
    def __init__(self, expect: int = 0) -> None:
        self.events: list[Event] = []
        self.expect = expect
        self.all_arrived = asyncio.Event()

    async def __call__(self, event: Event) -> None:
        self.events.append(event)
        if len(self.events) >= self.expect:
            self.all_arrived.set()


async def write(engine: AsyncEngine, aggregate: str, count: int, *, commit: bool = True) -> None:
    async with sessionmaker(engine)() as session:
        for n in range(count):
            record_event(
                session,
                aggregate_type="cat",
                aggregate_id=aggregate,
                event_type="cat.updated",
                payload={"n": n},
            )
        await session.flush()
        if commit:
            await session.commit()
        else:
            await session.rollback()


def relay_for(engine: AsyncEngine, recorder: Recorder, batch_size: int = 100) -> Relay:
    return Relay(engine, InProcessPublisher({"*": [recorder]}), batch_size=batch_size, poll_interval=0.01)


async def drain(relay: Relay) -> int:
    total = 0
    while done := await relay.run_once():
        total += done
    return total


async def test_an_event_of_a_rolled_back_transaction_is_never_relayed(committed: AsyncEngine) -> None:
    recorder = Recorder()
    await write(committed, "ghost", 1, commit=False)
    assert await drain(relay_for(committed, recorder)) == 0
    assert recorder.events == []


async def test_a_committed_event_is_delivered_once_with_its_metadata(committed: AsyncEngine) -> None:
    recorder = Recorder()
    token = request_id_var.set("req-outbox")
    try:
        await write(committed, "points", 1)
    finally:
        request_id_var.reset(token)
    relay = relay_for(committed, recorder)
    assert await drain(relay) == 1
    assert await drain(relay) == 0
    [event] = recorder.events
    assert (event.aggregate_type, event.aggregate_id, event.event_type) == ("cat", "points", "cat.updated")
    assert event.payload == {"n": 0}
    assert event.schema_version == 1
    assert event.request_id == "req-outbox"
    async with committed.connect() as conn:
        pending = await conn.scalar(text("SELECT count(*) FROM events.outbox WHERE published_at IS NULL"))
    assert pending == 0


async def test_events_are_delivered_in_order_per_aggregate_across_batches(committed: AsyncEngine) -> None:
    recorder = Recorder()
    for aggregate in ("a", "b", "c"):
        await write(committed, aggregate, 7)
    assert await drain(relay_for(committed, recorder, batch_size=4)) == 21
    by_aggregate: dict[str, list[int]] = defaultdict(list)
    for event in recorder.events:
        by_aggregate[event.aggregate_id].append(event.payload["n"])
    assert by_aggregate == {k: list(range(7)) for k in ("a", "b", "c")}


async def test_a_failing_handler_is_retried_and_holds_back_only_its_aggregate(committed: AsyncEngine) -> None:
    delivered: list[tuple[str, int]] = []
    failures = {"n": 0}

    async def flaky(event: Event) -> None:
        if event.aggregate_id == "bad" and event.payload["n"] == 0 and failures["n"] == 0:
            failures["n"] += 1
            raise ConnectionError("consumer away")
        delivered.append((event.aggregate_id, event.payload["n"]))

    await write(committed, "bad", 2)
    await write(committed, "good", 2)
    relay = Relay(committed, InProcessPublisher({"*": [flaky]}), max_backoff=0.05)
    await drain(relay)
    assert delivered == [("good", 0), ("good", 1)], "the failed aggregate must wait, the other must not"
    async with committed.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT attempts, last_error FROM events.outbox WHERE aggregate_id = 'bad' ORDER BY seq LIMIT 1")
            )
        ).one()
    assert row.attempts == 1
    assert "consumer away" in row.last_error

    await asyncio.sleep(0.1)  # past the backoff
    await drain(relay)
    assert delivered[2:] == [("bad", 0), ("bad", 1)]


async def test_two_relays_at_once_lose_nothing_double_nothing_and_keep_order(committed: AsyncEngine) -> None:
    recorder = Recorder(expect=12 * 25)
    aggregates = [f"cat-{i}" for i in range(12)]
    writers = [write(committed, aggregate, 25) for aggregate in aggregates]
    relays = [relay_for(committed, recorder, batch_size=10) for _ in range(2)]
    async with relays[0].running(), relays[1].running():
        await asyncio.gather(*writers)
        async with asyncio.timeout(30):
            await recorder.all_arrived.wait()
        await asyncio.sleep(0.1)  # anything doubled would arrive now
    ids = [event.id for event in recorder.events]
    assert len(ids) == len(set(ids)) == 12 * 25
    by_aggregate: dict[str, list[int]] = defaultdict(list)
    for event in recorder.events:
        by_aggregate[event.aggregate_id].append(event.payload["n"])
    assert by_aggregate == {a: list(range(25)) for a in aggregates}


@pytest.mark.parametrize("event_type", ["cat.updated", "cat.published"])
async def test_handlers_receive_only_their_event_type(committed: AsyncEngine, event_type: str) -> None:
    updated, everything = Recorder(), Recorder()
    async with sessionmaker(committed)() as session:
        record_event(session, aggregate_type="cat", aggregate_id="x", event_type=event_type, payload={})
        await session.commit()
    publisher = InProcessPublisher({"cat.updated": [updated], "*": [everything]})
    await drain(Relay(committed, publisher))
    assert len(everything.events) == 1
    assert len(updated.events) == (1 if event_type == "cat.updated" else 0)


async def test_a_committed_event_wakes_a_listening_relay_long_before_its_poll(committed: AsyncEngine) -> None:
    recorder = Recorder(expect=1)
    relay = Relay(committed, InProcessPublisher({"*": [recorder]}), poll_interval=10, listen=True)
    async with relay.running():
        async with asyncio.timeout(5):
            await relay.listening.wait()
        await asyncio.sleep(0.1)  # the relay's first (empty) batch is over: it waits on the poll now
        started = time.monotonic()
        await write(committed, "notify", 1)
        async with asyncio.timeout(0.5):
            await recorder.all_arrived.wait()
    assert time.monotonic() - started < 0.5


async def test_the_listener_reconnects_when_its_connection_is_killed(committed: AsyncEngine) -> None:
    recorder = Recorder(expect=1)
    relay = Relay(committed, InProcessPublisher({"*": [recorder]}), poll_interval=10, listen=True)
    async with relay.running():
        async with asyncio.timeout(5):
            await relay.listening.wait()
        assert await terminate_connections(committed, "cathouse-relay-listen") == 1
        async with asyncio.timeout(5):
            while relay.listening.is_set():  # noqa: ASYNC110 - no event tells that it went down
                await asyncio.sleep(0.01)
            await relay.listening.wait()
        await asyncio.sleep(0.1)
        await write(committed, "after-reconnect", 1)
        async with asyncio.timeout(0.5):
            await recorder.all_arrived.wait()


class Away:
    """A publisher whose destination is down until ``back`` is set."""

    def __init__(self) -> None:
        self.back = False
        self.tries = 0
        self.delivered: list[Event] = []
        self.drained = asyncio.Event()

    async def publish(self, event: Event) -> None:
        self.tries += 1
        if not self.back:
            raise PublisherUnavailable("broker down")
        self.delivered.append(event)
        if len(self.delivered) == 6:
            self.drained.set()


async def test_an_unavailable_publisher_pauses_the_relay_and_keeps_every_event_pending(
    committed: AsyncEngine,
) -> None:
    away = Away()
    relay = Relay(committed, away, poll_interval=0.01, unavailable_max_backoff=0.1)
    await write(committed, "a", 3)
    await write(committed, "b", 3)
    async with relay.running():
        await asyncio.sleep(0.6)
        tries = away.tries
        assert 1 <= tries <= 10, f"the relay paused between tries instead of spinning ({tries} tries)"
        async with committed.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE published_at IS NULL) AS pending, sum(attempts) AS attempts,"
                        " count(*) FILTER (WHERE available_at > now()) AS delayed, max(last_error) AS error"
                        " FROM events.outbox"
                    )
                )
            ).one()
        assert row.pending == 6
        # The relay keeps trying while the row is read: between the tries before and after.
        assert tries <= row.attempts <= away.tries, "each failed publish is counted on its event"
        assert row.delayed == 0, "the events are not pushed into a backoff: they go as soon as it is back"
        assert "broker down" in row.error
        assert relay.unavailable_for > 0

        away.back = True
        async with asyncio.timeout(2):
            await away.drained.wait()
    by_aggregate: dict[str, list[int]] = defaultdict(list)
    for event in away.delivered:
        by_aggregate[event.aggregate_id].append(event.payload["n"])
    assert by_aggregate == {"a": [0, 1, 2], "b": [0, 1, 2]}
    assert relay.unavailable_for == 0
