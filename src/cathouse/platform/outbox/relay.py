"""The relay: claims committed outbox rows and hands them to a publisher, once each, in order.

Several relays may run at once. Each claims only the *oldest pending event of an aggregate*
(``FOR UPDATE SKIP LOCKED``) and then that aggregate's later events, so two relays never work
on one aggregate together and each aggregate's events leave in the order they were written.
Delivery is at least once: a relay that dies after publishing but before its commit publishes
again, so consumers dedupe by event id.

The relay sleeps until PostgreSQL tells it an event committed: an AFTER INSERT trigger on the
outbox NOTIFYs ``cathouse_outbox`` and the relay LISTENs (``cathouse.platform.listen``), so
events leave within milliseconds while the poll is only a safety net. When the publisher's
destination (a broker) is away it raises :class:`PublisherUnavailable`: the relay stops the
batch, leaves the events pending and pauses, so an outage neither spins nor floods the log, and
the outbox drains once the broker is back. Without a broker the publisher is a
:class:`~cathouse.platform.outbox.fanout.Fanout`, which parks what one consumer group fails for
that group alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from loguru import logger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cathouse.platform.db import create_engine
from cathouse.platform.listen import Listener
from cathouse.platform.metrics import OUTBOX_FAILURES, OUTBOX_PUBLISHED
from cathouse.platform.settings import Settings


@dataclass(frozen=True, slots=True)
class Event:
    """An outbox row as publishers and handlers see it."""

    id: str
    seq: int
    aggregate_type: str
    aggregate_id: str
    event_type: str
    schema_version: int
    payload: dict[str, Any]
    occurred_at: datetime
    request_id: str | None
    attempts: int


class Publisher(Protocol):
    """Where relayed events go: in-process handlers, or a broker (``cathouse.platform.broker``)."""

    async def publish(self, event: Event) -> None: ...


@runtime_checkable
class GroupPublisher(Publisher, Protocol):
    """A publisher that hands events to consumer groups itself (:class:`~.fanout.Fanout`): it parks
    what a group fails in the relay's transaction, and retries it when the relay asks."""

    async def deliver(self, conn: AsyncConnection, events: Sequence[Event]) -> None: ...

    async def retry(self, engine: AsyncEngine, limit: int) -> int: ...


class PublisherUnavailable(Exception):
    """The publisher's destination is away (not this event's fault): pause the relay, keep the events."""


NOTIFY_CHANNEL = "cathouse_outbox"


Handler = Callable[[Event], Awaitable[None]]


class InProcessPublisher:
    """Calls the handlers registered for an event's type (``"*"`` receives every event)."""

    def __init__(self, handlers: Mapping[str, Sequence[Handler]] | None = None) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        for event_type, hs in (handlers or {}).items():
            self._handlers[event_type].extend(hs)

    def register(self, event_type: str, handler: Handler) -> None:
        self._handlers[event_type].append(handler)

    async def publish(self, event: Event) -> None:
        for handler in (*self._handlers.get(event.event_type, ()), *self._handlers.get("*", ())):
            await handler(event)


_COLUMNS = (
    "id::text, seq, aggregate_type, aggregate_id, event_type, schema_version, payload,"
    " occurred_at, request_id, attempts"
)

_CLAIM_HEADS = text(f"""
    SELECT {_COLUMNS} FROM events.outbox
    WHERE published_at IS NULL AND available_at <= now()
      AND id IN (
        SELECT DISTINCT ON (aggregate_type, aggregate_id) id FROM events.outbox
        WHERE published_at IS NULL
        ORDER BY aggregate_type, aggregate_id, seq)
    ORDER BY seq
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")

# Holding an aggregate's head means no other relay can hold any of its later events.
_CLAIM_FOLLOWERS = text(f"""
    SELECT {_COLUMNS} FROM events.outbox
    WHERE published_at IS NULL
      AND seq > :head_seq AND aggregate_type = :aggregate_type AND aggregate_id = :aggregate_id
    ORDER BY seq
    LIMIT :limit
    FOR UPDATE
""")

_MARK_PUBLISHED = text(
    "UPDATE events.outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY(CAST(:ids AS uuid[]))"
)

_MARK_UNSENT = text(
    "UPDATE events.outbox SET attempts = attempts + 1, last_error = :error WHERE id = CAST(:id AS uuid)"
)

_MARK_FAILED = text("""
    UPDATE events.outbox
    SET attempts = attempts + 1, last_error = :error,
        available_at = now() + make_interval(secs => :delay)
    WHERE id = CAST(:id AS uuid)
""")


def _event(row: Any) -> Event:
    return Event(*row)


class Relay:
    def __init__(
        self,
        engine: AsyncEngine,
        publisher: Publisher,
        *,
        batch_size: int = 100,
        poll_interval: float = 0.2,
        max_backoff: float = 60.0,
        unavailable_max_backoff: float = 5.0,
        listen: bool = False,
        listener: Listener | None = None,
        owns_engine: bool = False,
    ) -> None:
        self.engine = engine
        self.publisher = publisher
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.unavailable_max_backoff = unavailable_max_backoff
        self.listen = listen
        self._owns_engine = owns_engine
        self._wake = asyncio.Event()
        # The process's LISTEN connection when it has one (shared with the activity hub), else our own.
        self._owns_listener = listener is None
        self._listener = listener or Listener(engine.url, application_name="cathouse-relay-listen")
        # Set while the LISTEN connection is up (tests wait for it).
        self.listening = self._listener.listening_on(NOTIFY_CHANNEL)
        if listen:
            self._listener.listen(NOTIFY_CHANNEL, self.wake)
        # Consecutive batches stopped by PublisherUnavailable, and since when.
        self._unavailable = 0
        self._unavailable_since = 0.0

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        publisher: Publisher | None = None,
        *,
        engine: AsyncEngine | None = None,
        listener: Listener | None = None,
    ) -> Relay:
        """A relay as settings say; on ``engine`` and ``listener`` when the process has them (the
        relay and the workers share the process's pool and its LISTEN connection)."""
        owns_engine = engine is None
        if engine is None:
            engine = create_engine(settings, application_name="cathouse-relay", pool_size=settings.events.pool_size)
        return cls(
            engine,
            publisher or InProcessPublisher(),
            batch_size=settings.events.batch_size,
            poll_interval=settings.events.poll_interval,
            max_backoff=settings.events.max_backoff,
            unavailable_max_backoff=settings.events.broker_max_backoff,
            listen=settings.events.listen,
            listener=listener,
            owns_engine=owns_engine,
        )

    def wake(self) -> None:
        """Look for work now rather than at the next poll."""
        self._wake.set()

    async def _claim(self, conn: AsyncConnection) -> list[Event]:
        heads = [_event(r) for r in await conn.execute(_CLAIM_HEADS, {"limit": self.batch_size})]
        claimed: list[Event] = []
        room = self.batch_size - len(heads)
        for head in heads:
            claimed.append(head)
            if room <= 0:
                continue
            followers = [
                _event(r)
                for r in await conn.execute(
                    _CLAIM_FOLLOWERS,
                    {
                        "head_seq": head.seq,
                        "aggregate_type": head.aggregate_type,
                        "aggregate_id": head.aggregate_id,
                        "limit": room,
                    },
                )
            ]
            room -= len(followers)
            claimed.extend(followers)
        return claimed

    async def run_once(self) -> int:
        """Claim one batch, publish it, and record the outcome. Returns how many were published."""
        async with self.engine.connect() as conn, conn.begin():
            events = await self._claim(conn)
            if not events:
                return 0
            if isinstance(self.publisher, GroupPublisher):
                await self.publisher.deliver(conn, events)
                published = [e.id for e in events]
                for event in events:
                    OUTBOX_PUBLISHED.labels(event.event_type).inc()
            else:
                published = await self._publish(conn, events)
            if published:
                await conn.execute(_MARK_PUBLISHED, {"ids": published})
            return len(published)

    async def retry_once(self) -> int:
        """Retry what consumer groups failed (in process only). Returns how many went through."""
        if not isinstance(self.publisher, GroupPublisher):
            return 0
        return await self.publisher.retry(self.engine, self.batch_size)

    async def _publish(self, conn: AsyncConnection, events: list[Event]) -> list[str]:
        """Publish one at a time (to a broker, say), keeping each aggregate's order; record failures."""
        published: list[str] = []
        blocked: set[tuple[str, str]] = set()
        for event in events:
            key = (event.aggregate_type, event.aggregate_id)
            if key in blocked:
                continue  # an earlier event of this aggregate failed: keep the order
            try:
                await self.publisher.publish(event)
            except PublisherUnavailable as exc:
                # Not this event's fault: no backoff of its own, and the rest of the batch
                # stays pending untouched; ``run`` pauses the whole relay instead.
                self._publisher_away(exc)
                OUTBOX_FAILURES.labels(event.event_type).inc()
                await conn.execute(_MARK_UNSENT, {"id": event.id, "error": f"{type(exc).__name__}: {exc}"})
                break
            except Exception as exc:  # a handler's failure must not stop the relay
                blocked.add(key)
                delay = min(self.max_backoff, 0.5 * 2 ** min(event.attempts, 16))
                logger.opt(exception=exc).warning(
                    "outbox event failed; will retry",
                    event_id=event.id,
                    event_type=event.event_type,
                    retry_in=delay,
                )
                OUTBOX_FAILURES.labels(event.event_type).inc()
                await conn.execute(
                    _MARK_FAILED,
                    {"id": event.id, "error": f"{type(exc).__name__}: {exc}", "delay": delay},
                )
                continue
            self._publisher_back()
            published.append(event.id)
            OUTBOX_PUBLISHED.labels(event.event_type).inc()
        return published

    def _publisher_away(self, exc: Exception) -> None:
        # One warning per outage; the rest at debug, so a long outage does not flood the log.
        if self._unavailable == 0:
            self._unavailable_since = time.monotonic()
            logger.warning("publisher unavailable; events stay in the outbox", error=f"{type(exc).__name__}: {exc}")
        else:
            logger.debug("publisher still unavailable", error=str(exc), failures=self._unavailable)
        self._unavailable += 1

    def _publisher_back(self) -> None:
        if self._unavailable:
            logger.info("publisher reachable again; draining the outbox", away_for=self.unavailable_for)
            self._unavailable = 0

    @property
    def unavailable_for(self) -> float:
        """Seconds the publisher has been unreachable (0 when it is fine)."""
        return round(time.monotonic() - self._unavailable_since, 3) if self._unavailable else 0.0

    async def run(self) -> None:
        while True:
            # Cleared before the batch: a NOTIFY that arrives while it runs is not lost.
            self._wake.clear()
            try:
                done = await self.run_once()
                done += await self.retry_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away; try again after a pause
                logger.opt(exception=exc).warning("outbox relay could not run a batch")
                done = 0
            if self._unavailable:
                # New events must not wake us: the publisher, not the outbox, decides when to go on.
                await asyncio.sleep(min(self.unavailable_max_backoff, 0.25 * 2 ** min(self._unavailable - 1, 10)))
                continue
            if done >= self.batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Relay]:
        tasks = [asyncio.create_task(self.run(), name="outbox-relay")]
        if self.listen and self._owns_listener:
            tasks.append(asyncio.create_task(self._listener.run(), name="outbox-listener"))
        try:
            yield self
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self._owns_engine:
                await self.engine.dispose()
