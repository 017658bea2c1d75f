"""In-process delivery to consumer groups, each going at its own pace.

Without a broker the relay hands every event to every worker's handlers itself. Each worker is a
group, as on a broker: its handlers see its events at least once and in order per aggregate, and
one group's failure holds back no other. An event a group fails is parked for that group alone in
``events.retries``, in the relay's transaction, with its later events of the same aggregate queued
behind it; the event is marked published for everyone else. The relay retries the head of each
parked queue after a growing pause, and the queue behind it once the head went through.

A group may take several aggregates at once (``concurrency``): each aggregate's events still go
one at a time and in order, and a handler that gathers the calls in flight (the activity
consumer) can apply them together.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from loguru import logger
from sqlalchemy import Table, delete, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cathouse.platform.metrics import OUTBOX_FAILURES
from cathouse.platform.outbox.models import Retry
from cathouse.platform.outbox.relay import Event, Handler

_RETRIES = cast(Table, Retry.__table__)
Key = tuple[str, str]


def _key(event: Event) -> Key:
    return (event.aggregate_type, event.aggregate_id)


@dataclass(frozen=True)
class Group:
    """A worker's handlers by event type (``"*"``: every event), and how many aggregates' events
    they may take at once."""

    handlers: Mapping[str, Sequence[Handler]]
    concurrency: int = 1

    def wants(self, event: Event) -> bool:
        return bool(self.handlers.get(event.event_type) or self.handlers.get("*"))

    async def handle(self, event: Event) -> None:
        for handler in (*self.handlers.get(event.event_type, ()), *self.handlers.get("*", ())):
            await handler(event)


@dataclass(frozen=True)
class Parked:
    """A delivery a group did not make: ``error`` is why, or None when it only waits behind one."""

    event: Event
    error: str | None


def backoff(attempts: int, ceiling: float) -> float:
    return float(min(ceiling, 0.5 * 2 ** min(max(attempts - 1, 0), 16)))


async def run_group(name: str, group: Group, events: Sequence[Event], blocked: set[Key]) -> list[Parked]:
    """Hand ``events`` to one group: in order per aggregate, up to ``concurrency`` aggregates at a
    time. An aggregate in ``blocked`` waits behind a parked delivery and is not handed over."""
    chains: dict[Key, list[Event]] = defaultdict(list)
    for event in events:
        if group.wants(event):
            chains[_key(event)].append(event)
    gate = asyncio.Semaphore(group.concurrency)
    parked: list[Parked] = []

    async def run(key: Key, chain: list[Event]) -> None:
        if key in blocked:
            parked.extend(Parked(e, None) for e in chain)
            return
        async with gate:
            for i, event in enumerate(chain):
                try:
                    await group.handle(event)
                except Exception as exc:  # this group's problem: the others go on
                    OUTBOX_FAILURES.labels(event.event_type).inc()
                    logger.opt(exception=exc).warning(
                        "event handler failed; the event is parked for its group and retried",
                        group=name,
                        event_id=event.id,
                        event_type=event.event_type,
                        attempts=event.attempts,
                    )
                    parked.append(Parked(event, f"{type(exc).__name__}: {exc}"))
                    parked.extend(Parked(e, None) for e in chain[i + 1 :])
                    return

    await asyncio.gather(*(run(key, chain) for key, chain in chains.items()))
    return parked


class Fanout:
    """The relay's publisher without a broker: every group gets every event it handles."""

    def __init__(self, groups: Mapping[str, Group], *, max_backoff: float = 60.0, retry_check: float = 1.0) -> None:
        self.groups = dict(groups)
        self.max_backoff = max_backoff
        # How often a relay with nothing due looks for parked deliveries anyway: another relay
        # may park some.
        self.retry_check = retry_check
        self._look_again_at = 0.0

    async def publish(self, event: Event) -> None:
        """One event to every group, outside the relay (no parking): the first failure raises."""
        for name, group in self.groups.items():
            for failed in await run_group(name, group, [event], set()):
                raise RuntimeError(f"group {name} failed event {failed.event.id}: {failed.error}")

    async def deliver(self, conn: AsyncConnection, events: Sequence[Event]) -> None:
        """Hand claimed events to every group at once; park, in ``conn``'s transaction, what a
        group did not take."""
        blocked = await self._blocked(conn, events)
        names = list(self.groups)
        results = await asyncio.gather(*(run_group(n, self.groups[n], events, blocked.get(n, set())) for n in names))
        rows = [
            {
                "group_name": name,
                "event_id": uuid.UUID(p.event.id),
                "seq": p.event.seq,
                "aggregate_type": p.event.aggregate_type,
                "aggregate_id": p.event.aggregate_id,
                "attempts": int(p.error is not None),
                "available_at": func.now() + timedelta(seconds=backoff(1, self.max_backoff) if p.error else 0),
                "last_error": p.error,
            }
            for name, parked in zip(names, results, strict=True)
            for p in parked
        ]
        if rows:
            await conn.execute(insert(_RETRIES).values(rows))
            self._look_again_at = 0.0

    async def _blocked(self, conn: AsyncConnection, events: Sequence[Event]) -> dict[str, set[Key]]:
        """The aggregates of ``events`` that have a parked delivery, by group: they queue behind it."""
        keys = {_key(e) for e in events}
        statement = (
            select(_RETRIES.c.group_name, _RETRIES.c.aggregate_type, _RETRIES.c.aggregate_id)
            .distinct()
            .where(tuple_(_RETRIES.c.aggregate_type, _RETRIES.c.aggregate_id).in_(list(keys)))
        )
        found: dict[str, set[Key]] = defaultdict(set)
        for row in await conn.execute(statement):
            found[row.group_name].add((row.aggregate_type, row.aggregate_id))
        return found

    async def retry(self, engine: AsyncEngine, limit: int) -> int:
        """Retry the parked queues whose head is due. Returns how many deliveries went through."""
        if time.monotonic() < self._look_again_at:
            return 0
        async with engine.connect() as conn, conn.begin():
            done = await self._retry(conn, limit)
        # Nothing went through: look again in a while, not at every wake-up of the relay.
        self._look_again_at = time.monotonic() + self.retry_check if done == 0 else 0.0
        return done

    async def _retry(self, conn: AsyncConnection, limit: int) -> int:
        claimed = await self._claim_retries(conn, limit)
        if not claimed:
            return 0
        by_group: dict[str, list[Event]] = defaultdict(list)
        for name, event in claimed:
            by_group[name].append(event)
        names = list(by_group)
        results = await asyncio.gather(*(run_group(n, self.groups[n], by_group[n], set()) for n in names))
        done = 0
        for name, parked in zip(names, results, strict=True):
            left = {p.event.id for p in parked}
            through = [e.id for e in by_group[name] if e.id not in left]
            done += len(through)
            if through:
                where = (_RETRIES.c.group_name == name) & _RETRIES.c.event_id.in_([uuid.UUID(i) for i in through])
                await conn.execute(delete(_RETRIES).where(where))
            for p in parked:
                if p.error is None:
                    continue  # still behind the one that failed
                delay = backoff(p.event.attempts + 1, self.max_backoff)
                await conn.execute(
                    update(_RETRIES)
                    .where((_RETRIES.c.group_name == name) & (_RETRIES.c.event_id == uuid.UUID(p.event.id)))
                    .values(
                        attempts=_RETRIES.c.attempts + 1,
                        last_error=p.error,
                        available_at=func.now() + timedelta(seconds=delay),
                    )
                )
        return done

    async def _claim_retries(self, conn: AsyncConnection, limit: int) -> list[tuple[str, Event]]:
        heads = (await conn.execute(_CLAIM_RETRY_HEADS, {"groups": list(self.groups), "limit": limit})).all()
        claimed: list[tuple[str, Event]] = []
        room = limit - len(heads)
        for head in heads:
            name, event = _parked_event(head)
            claimed.append((name, event))
            if room <= 0:
                continue
            params = {"group": name, "seq": event.seq, "type": event.aggregate_type, "id": event.aggregate_id}
            followers = (await conn.execute(_CLAIM_RETRY_FOLLOWERS, {**params, "limit": room})).all()
            room -= len(followers)
            claimed.extend(_parked_event(row) for row in followers)
        return claimed


_PARKED_COLUMNS = (
    "r.group_name, o.id::text, o.seq, o.aggregate_type, o.aggregate_id, o.event_type, o.schema_version,"
    " o.payload, o.occurred_at, o.request_id, r.attempts"
)

# Only a queue's head is due or not; holding it means no other relay can take its followers.
_CLAIM_RETRY_HEADS = text(f"""
    SELECT {_PARKED_COLUMNS} FROM events.retries r JOIN events.outbox o ON o.id = r.event_id
    WHERE r.available_at <= now() AND r.group_name = ANY(:groups)
      AND (r.group_name, r.event_id) IN (
        SELECT DISTINCT ON (group_name, aggregate_type, aggregate_id) group_name, event_id
        FROM events.retries WHERE group_name = ANY(:groups)
        ORDER BY group_name, aggregate_type, aggregate_id, seq)
    ORDER BY r.seq
    LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
""")

_CLAIM_RETRY_FOLLOWERS = text(f"""
    SELECT {_PARKED_COLUMNS} FROM events.retries r JOIN events.outbox o ON o.id = r.event_id
    WHERE r.group_name = :group AND r.aggregate_type = :type AND r.aggregate_id = :id AND r.seq > :seq
    ORDER BY r.seq
    LIMIT :limit
    FOR UPDATE OF r
""")


def _parked_event(row: Any) -> tuple[str, Event]:
    name, *fields = row
    return name, Event(*fields)
