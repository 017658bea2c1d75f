"""The Broker contract, against every adapter whose server runs (see conftest)."""

from __future__ import annotations

import asyncio

from cathouse.platform.broker.base import Broker
from cathouse.platform.outbox.relay import Event
from tests.platform.broker.conftest import FAST, Brokers, Collector, event


async def publish(broker: Broker, aggregates: list[str], per_aggregate: int) -> list[Event]:
    sent = []
    for n in range(per_aggregate):
        for aggregate in aggregates:
            e = event(aggregate, n)
            await broker.publish(e)
            sent.append(e)
    return sent


async def settle(brokers: Brokers) -> None:
    # Redis members split the partitions by lease; give a new member time to get its share.
    if brokers.kind == "redis":
        await asyncio.sleep(FAST.lease * 1.2)


async def test_a_subscriber_gets_every_event_in_order_per_aggregate(brokers: Brokers) -> None:
    aggregates = [f"agg-{i}" for i in range(6)]
    got = Collector(expect=6 * 10)
    publisher, subscriber = brokers(), brokers()
    subscriber.subscribe("feed", got)
    await publisher.start()
    await subscriber.start()
    sent = await publish(publisher, aggregates, 10)
    await got.wait()
    await asyncio.sleep(0.3)  # anything doubled would arrive now
    assert sorted(e.id for e in got.events) == sorted(e.id for e in sent)
    assert got.by_aggregate() == {a: list(range(10)) for a in aggregates}
    first = next(e for e in got.events if e.id == sent[0].id)
    assert first == sent[0], "every field of the event survives the trip"


async def test_a_failed_event_comes_again_before_later_events_of_its_aggregate(brokers: Brokers) -> None:
    handled: list[tuple[str, int, int]] = []
    failed: set[str] = set()
    done = asyncio.Event()

    async def flaky(e: Event) -> None:
        if e.aggregate_id == "bad" and e.payload["n"] == 0 and e.id not in failed:
            failed.add(e.id)
            raise ConnectionError("downstream away")
        handled.append((e.aggregate_id, e.payload["n"], e.attempts))
        if len(handled) == 10:
            done.set()

    publisher, subscriber = brokers(), brokers()
    subscriber.subscribe("feed", flaky)
    await publisher.start()
    await subscriber.start()
    await publish(publisher, ["bad", "good"], 5)
    async with asyncio.timeout(20):
        await done.wait()
    bad = [(n, attempts) for aggregate, n, attempts in handled if aggregate == "bad"]
    assert [n for n, _ in bad] == [0, 1, 2, 3, 4], "nothing of 'bad' may overtake its failed event"
    assert bad[0][1] == 1, "the redelivered event knows it was tried before"
    assert [n for aggregate, n, _ in handled if aggregate == "good"] == [0, 1, 2, 3, 4]


async def test_members_of_a_group_share_the_work_and_groups_each_get_everything(brokers: Brokers) -> None:
    aggregates = [f"agg-{i}" for i in range(16)]
    total = len(aggregates) * 5
    one, two, other = Collector(total, "one"), Collector(total, "two"), Collector(total, "other")
    both = Collector(total)

    async def member(collector: Collector, e: Event) -> None:
        await collector(e)
        await both(e)

    publisher, first, second, third = brokers(), brokers(), brokers(), brokers()
    first.subscribe("shared", lambda e: member(one, e))
    second.subscribe("shared", lambda e: member(two, e))
    third.subscribe("audit", other)
    for broker in (publisher, first, second, third):
        await broker.start()
    await settle(brokers)
    sent = await publish(publisher, aggregates, 5)
    await both.wait()
    await other.wait()
    await asyncio.sleep(0.5)  # anything doubled would arrive now
    ids = sorted(e.id for e in sent)
    assert sorted(e.id for e in both.events) == ids, "each event handled once across the group"
    assert one.events, "both members took a share"
    assert two.events, "both members took a share"
    assert sorted(e.id for e in other.events) == ids, "another group gets everything too"
    assert both.by_aggregate() == {a: list(range(5)) for a in aggregates}


async def test_a_restarted_subscriber_resumes_where_it_left(brokers: Brokers) -> None:
    publisher = brokers()
    await publisher.start()
    before = Collector(expect=8)
    subscriber = brokers()
    subscriber.subscribe("durable", before)
    await subscriber.start()
    await publish(publisher, ["a", "b"], 4)
    await before.wait()
    await subscriber.stop()

    later = await publish(publisher, ["a", "b"], 4)
    after = Collector(expect=8)
    again = brokers()
    again.subscribe("durable", after)
    await again.start()
    await after.wait()
    await asyncio.sleep(0.3)
    assert sorted(e.id for e in after.events) == sorted(e.id for e in later), "only what came while it was away"
