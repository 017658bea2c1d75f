"""The consumer: applies each relayed event to the read model once, however often it arrives, and
measures how far behind it is."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime

from loguru import logger
from sqlalchemy import func, select, union_all
from sqlalchemy.ext.asyncio import AsyncEngine

from cathouse.activity.metrics import APPLIED, LAG_EVENTS, LAG_SECONDS, SKIPPED
from cathouse.activity.readmodel import Outcome, ReadModel, Rebuilding
from cathouse.platform.outbox import OutboxEvent
from cathouse.platform.outbox.models import Retry
from cathouse.platform.outbox.relay import Event

DUPLICATE_MESSAGE = "activity event applied before; delivery absorbed"
# The consumer group on a broker, and in ``events.retries`` without one (the worker's module).
GROUP = "activity"
# The most events applied in one transaction.
BATCH_SIZE = 256


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


class HeldBack(Exception):
    """An event not applied because an earlier one of its aggregate failed in the same batch."""


class Consumer:
    """The handler the relay (or a broker adapter) calls with every event, at least once each and in
    order per aggregate. A failure raises, and the event comes again later.

    Calls in flight together (one per aggregate or partition) are applied as one batch, in one
    transaction: while a batch is applied the next gathers, so a busy consumer commits once for
    many events and an idle one applies an event as soon as it comes. A batch that fails is
    applied again one event at a time, so a poisoned event fails alone.
    """

    def __init__(self, model: ReadModel, *, batch_size: int = BATCH_SIZE) -> None:
        self.model = model
        self.batch_size = batch_size
        self._waiting: list[tuple[Event, asyncio.Future[None]]] = []
        self._applying: asyncio.Task[None] | None = None

    async def on_event(self, event: Event) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((event, future))
        if self._applying is None or self._applying.done():
            self._applying = asyncio.create_task(self._drain(), name="activity-consumer")
        await future

    async def close(self) -> None:
        for _, future in self._waiting:
            future.cancel()
        if self._applying is not None:
            self._applying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._applying

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self.batch_size], self._waiting[self.batch_size :]
            # A caller that gave up (its relay stopped) gets the event again: leave it for then.
            batch = [(event, future) for event, future in batch if not future.done()]
            try:
                errors = await self._apply([event for event, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:  # Rebuilding, say: every caller gets the event again later
                errors = [exc] * len(batch)
            self._settle(batch, errors)

    @staticmethod
    def _settle(batch: list[tuple[Event, asyncio.Future[None]]], errors: Sequence[Exception | None]) -> None:
        for (_, future), error in zip(batch, errors, strict=True):
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    async def _apply(self, events: list[Event]) -> list[Exception | None]:
        if not events:
            return []
        try:
            count(await self.model.apply(events))
            return [None] * len(events)
        except Rebuilding:
            raise
        except Exception as exc:
            if len(events) == 1:
                return [exc]
            logger.warning(
                "activity batch failed; applying its events one by one",
                events=len(events),
                error=f"{type(exc).__name__}: {exc}",
            )
        errors: list[Exception | None] = []
        failed: set[tuple[str, str]] = set()
        for event in events:
            key = (event.aggregate_type, event.aggregate_id)
            if key in failed:  # keep the aggregate's order: it comes again after the one that failed
                errors.append(HeldBack(f"an earlier event of {key} failed"))
                continue
            try:
                count(await self.model.apply([event]))
                errors.append(None)
            except Rebuilding:
                raise
            except Exception as exc:
                failed.add(key)
                errors.append(exc)
        return errors


class LagProbe:
    """Counts the events waiting for the consumer: still in the outbox, or parked for its group
    after a failure (its lag in events; in seconds, the oldest one's age)."""

    def __init__(self, engine: AsyncEngine, interval: float, *, group: str = GROUP) -> None:
        self.engine = engine
        self.interval = interval
        self.group = group

    async def measure(self) -> tuple[int, float]:
        waiting_rows = union_all(
            select(OutboxEvent.occurred_at).where(OutboxEvent.published_at.is_(None)),
            select(OutboxEvent.occurred_at)
            .join(Retry, Retry.event_id == OutboxEvent.id)
            .where(Retry.group_name == self.group),
        ).subquery()
        statement = select(func.count(), func.min(waiting_rows.c.occurred_at))
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
