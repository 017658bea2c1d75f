"""Delivery to consumer groups without a broker: each group goes at its own pace, in order per
aggregate, and what one group fails is retried for that group alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.platform.outbox.fanout import Fanout, Group
from cathouse.platform.outbox.relay import Event, Relay
from tests.platform.outbox.test_relay import drain, write


class Handler:
    """Records what it handled; fails every event ``fails`` says it should."""

    def __init__(self, fails: Callable[[Event], bool] = lambda _: False) -> None:
        self.fails = fails
        self.handled: list[tuple[str, int]] = []

    async def __call__(self, event: Event) -> None:
        if self.fails(event):
            raise ConnectionError(f"cannot take {event.aggregate_id} {event.payload['n']}")
        self.handled.append((event.aggregate_id, event.payload["n"]))


def relay_for(engine: AsyncEngine, **groups: Group) -> Relay:
    return Relay(engine, Fanout(groups, max_backoff=0.01, retry_check=0), poll_interval=0.01)


async def parked(engine: AsyncEngine) -> list[tuple[str, str, int, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("""
            SELECT r.group_name, r.aggregate_id, (o.payload->>'n')::int AS n, r.attempts
            FROM events.retries r JOIN events.outbox o ON o.id = r.event_id ORDER BY r.seq
            """)
        )
        return [tuple(row) for row in rows]


async def time_passes(engine: AsyncEngine) -> None:
    """Every parked delivery is due (rather than sleeping through the backoff)."""
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE events.retries SET available_at = now() - interval '1 second'"))


async def test_a_failing_group_holds_back_neither_another_group_nor_its_own_other_aggregates(
    committed: AsyncEngine,
) -> None:
    broken = {"on": True}
    flaky = Handler(lambda e: broken["on"] and e.aggregate_id == "bad" and e.payload["n"] == 0)
    steady = Handler()
    relay = relay_for(committed, flaky=Group({"*": [flaky]}), steady=Group({"*": [steady]}))
    await write(committed, "bad", 3)
    await write(committed, "good", 2)

    assert await drain(relay) == 5

    assert steady.handled == [("bad", 0), ("bad", 1), ("bad", 2), ("good", 0), ("good", 1)]
    assert flaky.handled == [("good", 0), ("good", 1)], "its failed aggregate waits, the other does not"
    assert await parked(committed) == [("flaky", "bad", 0, 1), ("flaky", "bad", 1, 0), ("flaky", "bad", 2, 0)]

    # A later event of the parked aggregate queues behind the failure, for that group only.
    await write(committed, "bad", 1)
    assert await drain(relay) == 1
    assert steady.handled[-1] == ("bad", 0)
    assert [p[1:3] for p in await parked(committed)] == [("bad", 0), ("bad", 1), ("bad", 2), ("bad", 0)]

    await time_passes(committed)
    assert await relay.retry_once() == 0, "still failing: nothing went through"
    assert (await parked(committed))[0] == ("flaky", "bad", 0, 2)

    broken["on"] = False
    await time_passes(committed)
    assert await relay.retry_once() == 4
    assert flaky.handled[2:] == [("bad", 0), ("bad", 1), ("bad", 2), ("bad", 0)], "in order, once each"
    assert await parked(committed) == []
    assert len(steady.handled) == 6, "the steady group got each event once"


async def test_a_retry_is_not_due_before_its_backoff(committed: AsyncEngine) -> None:
    flaky = Handler(lambda _: True)
    relay = Relay(committed, Fanout({"flaky": Group({"*": [flaky]})}, max_backoff=3600, retry_check=0))
    await write(committed, "bad", 1)
    await drain(relay)
    assert await relay.retry_once() == 0
    assert await parked(committed) == [("flaky", "bad", 0, 1)], "not tried again yet"


async def test_a_group_takes_several_aggregates_at_once_and_each_in_order(committed: AsyncEngine) -> None:
    in_flight, most = 0, 0
    handled: list[tuple[str, int]] = []

    async def slow(event: Event) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0)  # let the other aggregates' calls start
        handled.append((event.aggregate_id, event.payload["n"]))
        in_flight -= 1

    for aggregate in ("a", "b", "c", "d"):
        await write(committed, aggregate, 3)
    relay = relay_for(committed, wide=Group({"*": [slow]}, concurrency=3))
    assert await drain(relay) == 12

    assert most == 3
    for aggregate in ("a", "b", "c", "d"):
        assert [n for a, n in handled if a == aggregate] == [0, 1, 2]
