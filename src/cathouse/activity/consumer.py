"""The consumer: applies each relayed event to the read model once, however often it arrives, and
measures how far behind it is."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from loguru import logger
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.activity.metrics import APPLIED, LAG_EVENTS, LAG_SECONDS, SKIPPED
from cathouse.activity.readmodel import Outcome, ReadModel
from cathouse.platform.outbox import OutboxEvent
from cathouse.platform.outbox.relay import Event

DUPLICATE_MESSAGE = "activity event applied before; delivery absorbed"


def count(outcomes: Sequence[Outcome], *, live: bool = True) -> None:
    for outcome in outcomes:
        if outcome.status == "applied":
            APPLIED.labels(outcome.event.event_type).inc()
            if live:
                age = (datetime.now(UTC) - outcome.event.occurred_at).total_seconds()
                LAG_SECONDS.set(max(0.0, age))
        else:
            SKIPPED.labels(outcome.reason or outcome.status).inc()
            if outcome.status == "duplicate":
                # A redelivery absorbed (at least once): the metric dies with its process, the line does not.
                logger.debug(DUPLICATE_MESSAGE, event_id=outcome.event.id, event_type=outcome.event.event_type)


class Consumer:
    """The handler the relay (or a broker adapter) calls with every event, at least once each and in
    order per aggregate. A failure raises, and the event comes again later."""

    def __init__(self, model: ReadModel) -> None:
        self.model = model

    async def on_event(self, event: Event) -> None:
        count(await self.model.apply([event]))


class LagProbe:
    """Counts the events waiting in the outbox: the consumer's lag in events (and in seconds, the
    oldest one's age)."""

    def __init__(self, engine: AsyncEngine, interval: float) -> None:
        self.engine = engine
        self.interval = interval

    async def measure(self) -> tuple[int, float]:
        statement = select(func.count(), func.min(OutboxEvent.occurred_at)).where(OutboxEvent.published_at.is_(None))
        async with self.engine.connect() as conn:
            waiting, oldest = (await conn.execute(statement)).one()
        LAG_EVENTS.set(waiting)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        if waiting:
            LAG_SECONDS.set(max(0.0, age))
        return int(waiting), age

    async def run(self) -> None:
        while True:
            await self.measure()
            await asyncio.sleep(self.interval)
