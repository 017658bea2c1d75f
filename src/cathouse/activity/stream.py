"""``GET /api/v1/activity/stream``: new entries as Server-Sent Events, resumable without gaps.

Each event's ``id:`` is the entry's id. A client that reconnects with ``Last-Event-ID: N`` first
gets every entry above N it may see, from the store, then live ones; ids only grow, and entries
commit in id order, so nothing is skipped and nothing sent twice. A comment line every
``heartbeat`` seconds keeps idle connections open through proxies. The stream ends when the
client goes, when the server shuts down, when it falls too far behind, or after ``max_age``
seconds; the client then reconnects (EventSource does so by itself) and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Sequence

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from cathouse.activity.hub import Hub
from cathouse.activity.readmodel import Entry, Feed, ReadModel
from cathouse.activity.views import Names, Readers, Viewer, names, present

BACKLOG_BATCH = 200
# How soon an EventSource reconnects after a stream ends, in milliseconds.
RETRY_MS = 1000


class EventStreamResponse(StreamingResponse):
    """A stream that stops as soon as the client disconnects, not at the next write after."""

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def stream() -> None:
                with contextlib.suppress(OSError):  # the client went while we wrote
                    await self.stream_response(send)
                group.cancel_scope.cancel()

            group.start_soon(stream)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()


def server_exiting() -> bool:
    """Whether uvicorn was told to stop. It waits for open responses before the app's shutdown, so a
    stream must notice by itself; uvicorn's SIGTERM handler is its ``Server.handle_exit``."""
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return bool(getattr(server, "should_exit", False))


def feeds_of(viewer: Viewer) -> list[Feed]:
    if viewer.everyone:
        return [Feed.everything()]
    feeds = [Feed.public()]
    if viewer.user_id is not None:
        feeds.append(Feed.user(viewer.user_id))
    return feeds


def frame(entry: Entry, found: Names, viewer: Viewer) -> str:
    # JSON has no raw newlines, so the data fits on one line.
    return f"id: {entry.id}\ndata: {present(entry, found, viewer).model_dump_json()}\n\n"


async def _frames(
    entries: Sequence[Entry], sessions: async_sessionmaker[AsyncSession], readers: Readers, viewer: Viewer
) -> list[str]:
    async with sessions() as session:
        found = await names(session, readers, entries)
    return [frame(e, found, viewer) for e in entries]


async def entry_stream(
    *,
    hub: Hub,
    model: ReadModel,
    sessions: async_sessionmaker[AsyncSession],
    readers: Readers,
    viewer: Viewer,
    last_event_id: int | None,
    heartbeat: float,
    max_age: float,
) -> AsyncIterator[str]:
    subscription = await hub.subscribe(viewer)
    loop = asyncio.get_running_loop()
    try:
        yield f"retry: {RETRY_MS}\n\n"
        if last_event_id is None:
            last = await model.latest_id()
        else:
            last = last_event_id
            while True:
                backlog = await model.since(feeds_of(viewer), last, limit=BACKLOG_BATCH)
                if backlog:
                    for chunk in await _frames(backlog, sessions, readers, viewer):
                        yield chunk
                    last = backlog[-1].id
                if len(backlog) < BACKLOG_BATCH:
                    break
        ends = loop.time() + max_age
        beat = loop.time() + heartbeat
        while not subscription.ended.is_set() and not server_exiting() and loop.time() < ends:
            try:
                entries, found = await asyncio.wait_for(
                    subscription.queue.get(), max(0.0, min(1.0, beat - loop.time()))
                )
            except TimeoutError:
                if loop.time() >= beat:
                    yield ": keep-alive\n\n"
                    beat = loop.time() + heartbeat
                continue
            for entry in entries:
                if entry.id > last:
                    yield frame(entry, found, viewer)
                    last = entry.id
    finally:
        hub.unsubscribe(subscription)
