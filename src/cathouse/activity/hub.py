"""The hub: tells every live stream of this process about new entries, with one read per wake-up.

Whoever applies events (the consumer, in this process or another) ends its transaction with
``NOTIFY activity_entries``; the hub LISTENs (``cathouse.platform.listen``, on the process's one
LISTEN connection, which the relay shares when it runs in the same process) from when the first
stream connects, and reads what is new once for all streams, names included. It also looks
every ``poll_interval`` seconds, so a notification lost with a dropped connection only delays.
Each stream gets the entries its caller may see; a stream too slow to keep up is closed, and its
client reconnects with Last-Event-ID and catches up from the store.
"""

from __future__ import annotations

import asyncio
import contextlib

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cathouse.activity.metrics import STREAMS
from cathouse.activity.readmodel import Entry, Feed, ReadModel
from cathouse.activity.stores.postgres import NOTIFY_CHANNEL
from cathouse.activity.views import Names, Readers, Viewer, names
from cathouse.platform.listen import Listener

BATCH = 500
# Batches a stream may have waiting before it counts as too slow.
QUEUE_SIZE = 64


class Subscription:
    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.queue: asyncio.Queue[tuple[list[Entry], Names]] = asyncio.Queue(maxsize=QUEUE_SIZE)
        # Set when the stream must end: the hub stops, or the stream fell too far behind.
        self.ended = asyncio.Event()

    def offer(self, entries: list[Entry], found: Names) -> None:
        visible = [e for e in entries if self.viewer.may_see(e)]
        if not visible or self.ended.is_set():
            return
        try:
            self.queue.put_nowait((visible, found))
        except asyncio.QueueFull:
            self.ended.set()


class Hub:
    def __init__(
        self,
        model: ReadModel,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        readers: Readers,
        *,
        listener: Listener | None = None,
        poll_interval: float = 2.0,
    ) -> None:
        self.model = model
        self.engine = engine
        self.sessions = sessions
        self.readers = readers
        self.poll_interval = poll_interval
        self._subscriptions: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last = 0
        self.closed = False
        # The process's LISTEN connection (its owner runs it), or one of our own.
        self._owns_listener = listener is None
        self._listener = listener or Listener(engine.url, application_name="cathouse-activity-listen")
        # Set while the LISTEN connection is up (tests wait for it).
        self.listening = self._listener.listening_on(NOTIFY_CHANNEL)

    async def subscribe(self, viewer: Viewer) -> Subscription:
        """Register a stream. Entries above the store's newest id at the first subscription reach
        every subscription made since: a stream reads its backlog after subscribing, and loses none."""
        if self._task is None:
            self._last = await self.model.latest_id()
            self._task = asyncio.create_task(self._run(), name="activity-hub")
        subscription = Subscription(viewer)
        if self.closed:
            subscription.ended.set()
        self._subscriptions.add(subscription)
        STREAMS.inc()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            STREAMS.dec()

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        self.closed = True
        for subscription in list(self._subscriptions):
            subscription.ended.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        # Registered with the first stream: a process nobody streams from holds no LISTEN connection.
        if NOTIFY_CHANNEL not in self._listener.channels:
            self._listener.listen(NOTIFY_CHANNEL, self.wake)
        listener = (
            asyncio.create_task(self._listener.run(), name="activity-hub-listener") if self._owns_listener else None
        )
        try:
            while True:
                self._wake.clear()  # before reading: a NOTIFY during the read is not lost
                try:
                    await self._dispatch()
                except Exception as exc:  # the store may be away; the next wake-up tries again
                    logger.warning("activity streams could not read new entries", error=f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def _dispatch(self) -> None:
        while True:
            entries = await self.model.since([Feed.everything()], self._last, limit=BATCH)
            if not entries:
                if await self.model.latest_id() < self._last:
                    self._last = 0  # the read model was emptied and numbered afresh
                return
            self._last = entries[-1].id
            if self._subscriptions:
                async with self.sessions() as session:
                    found = await names(session, self.readers, entries)
                for subscription in list(self._subscriptions):
                    subscription.offer(entries, found)
            if len(entries) < BATCH:
                return
