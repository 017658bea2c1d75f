"""Feeds, statistics and the live stream."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cathouse.activity.dependencies import HubDep, Model, ReadersDep, Session, Sessions
from cathouse.activity.errors import CatNotFound
from cathouse.activity.readmodel import Feed, ReadModel
from cathouse.activity.schemas import ActivityPage, CatStatsOut, PlatformStatsOut
from cathouse.activity.stream import EventStreamResponse, entry_stream
from cathouse.activity.views import Readers, Viewer, cat_stats, platform_stats, present_all
from cathouse.contracts.reads import CatInfo, CatReader
from cathouse.platform.errors import Forbidden
from cathouse.platform.openapi import problems
from cathouse.platform.pagination import MAX_LIMIT, InvalidCursor, decode_cursor, encode_cursor
from cathouse.platform.security import BrowserUser, CurrentUser, OptionalUser, Principal
from cathouse.platform.settings import Settings

router = APIRouter(prefix="/api/v1/activity", tags=["activity"])
_EVERYONE_REFUSED = (Forbidden, "Only admins may see every entry (`everyone=true`).")

# What a slug can be (no query for anything else), and an SSE event id this service sends.
_SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
SlugPath = Annotated[str, Path(max_length=63, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]
Cursor = Annotated[str | None, Query(max_length=200, description="From a previous page's `next_cursor`.")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Everyone = Annotated[bool, Query(description="Admins only: every entry, not just the public ones.")]


def _before(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    (before,) = decode_cursor(cursor, 1)
    if not isinstance(before, int) or isinstance(before, bool) or not 0 < before < 2**63:
        raise InvalidCursor()
    return before


async def _page(
    model: ReadModel,
    session: AsyncSession,
    readers: Readers,
    feed: Feed,
    viewer: Viewer,
    cursor: str | None,
    limit: int,
) -> ActivityPage:
    rows = await model.page(feed, before=_before(cursor), limit=limit + 1)
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return ActivityPage(items=await present_all(session, readers, rows[:limit], viewer), next_cursor=next_cursor)


def _viewer(user: Principal | None, everyone: bool) -> Viewer:
    if everyone and not (user is not None and user.is_admin):
        raise Forbidden("Only admins may see every entry.")
    return Viewer(user, everyone=everyone)


async def _visible_cat(
    sessions: async_sessionmaker[AsyncSession], cats: CatReader, slug: str, user: Principal | None
) -> CatInfo:
    # A session of its own, closed before the read model takes a connection of the same pool: a
    # request holding two at once could wait for itself when the pool is small (one by default).
    cat = None
    if _SLUG.fullmatch(slug):
        async with sessions() as session:
            cat = await cats.cat_by_slug(session, slug)
    if cat is None:
        raise CatNotFound()
    # As in the catalog: a cat not published is known only to its publisher and admins.
    if cat.status != "published" and not (user and (user.is_admin or user.user_id == cat.publisher_id)):
        raise CatNotFound()
    return cat


@router.get(
    "",
    response_model=ActivityPage,
    summary="What happened on the platform, newest first",
    responses=problems(_EVERYONE_REFUSED, InvalidCursor),
)
async def global_feed(
    user: OptionalUser,
    model: Model,
    session: Session,
    readers: ReadersDep,
    everyone: Everyone = False,
    cursor: Cursor = None,
    limit: Limit = 20,
) -> ActivityPage:
    viewer = _viewer(user, everyone)
    feed = Feed.everything() if everyone else Feed.public()
    return await _page(model, session, readers, feed, viewer, cursor, limit)


@router.get(
    "/me",
    response_model=ActivityPage,
    summary="What happened to you, your installations and your cats",
    responses=problems(InvalidCursor),
)
async def my_feed(
    user: CurrentUser, model: Model, session: Session, readers: ReadersDep, cursor: Cursor = None, limit: Limit = 20
) -> ActivityPage:
    return await _page(model, session, readers, Feed.user(user.user_id), Viewer(user), cursor, limit)


@router.get("/stats", response_model=PlatformStatsOut, summary="Platform statistics", name="platform_stats")
async def stats(model: Model) -> PlatformStatsOut:
    return platform_stats(await model.platform_counters())


@router.get(
    "/cats/{slug}",
    response_model=ActivityPage,
    summary="What happened to a cat, newest first",
    responses=problems(CatNotFound, InvalidCursor),
)
async def cat_feed(
    slug: SlugPath,
    user: OptionalUser,
    model: Model,
    sessions: Sessions,
    session: Session,
    readers: ReadersDep,
    cursor: Cursor = None,
    limit: Limit = 20,
) -> ActivityPage:
    cat = await _visible_cat(sessions, readers.cats, slug, user)
    return await _page(model, session, readers, Feed.cat(cat.id), Viewer(user), cursor, limit)


@router.get(
    "/cats/{slug}/stats",
    response_model=CatStatsOut,
    summary="A cat's installs, ratings and calls",
    name="cat_stats",
    responses=problems(CatNotFound),
)
async def cat_statistics(
    slug: SlugPath,
    user: OptionalUser,
    model: Model,
    sessions: Sessions,
    session: Session,
    readers: ReadersDep,
    request: Request,
) -> CatStatsOut:
    cat = await _visible_cat(sessions, readers.cats, slug, user)
    settings: Settings = request.app.state.settings
    counters = await model.cat_counters(cat.id)  # before the session takes its connection
    return await cat_stats(session, readers.audit, cat, counters, settings.activity.proxy_days)


_EVENT = {
    "type": "object",
    "description": "One Server-Sent Event, as an EventSource reads it: an activity entry. (The stream "
    "opens with a `retry:` field and sends comment lines as heartbeats; neither is an event.)",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {
            "type": "string",
            "pattern": "^[0-9]{1,18}$",
            "description": "The entry's id: send it back as Last-Event-ID.",
        },
        "event": {"const": "message", "description": "No `event:` field is sent: the default type."},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/EntryOut"},
            "description": "The entry as in the feeds, as one line of JSON.",
        },
    },
    "additionalProperties": False,
}


@router.get(
    "/stream",
    summary="New entries you may see, live, as Server-Sent Events",
    response_class=EventStreamResponse,
    responses={
        200: {
            "description": "`id:` the entry's id, `data:` the entry as in the feeds (one JSON line); "
            "a comment line as a heartbeat. Ends after a while: reconnect with Last-Event-ID.",
            # The body is text; one event is described as OpenAPI 3.2's itemSchema would, under an
            # extension until then (a schema of one event for the whole body made generated
            # clients parse the stream's text as one object, and fail).
            "content": {"text/event-stream": {"schema": {"type": "string"}, "x-itemSchema": _EVENT}},
        },
        **problems(_EVERYONE_REFUSED),
    },
)
async def stream(
    request: Request,
    user: BrowserUser,
    model: Model,
    hub: HubDep,
    readers: ReadersDep,
    everyone: Everyone = False,
    last_event_id: Annotated[
        str | None, Header(pattern=r"^([0-9]{1,18})?$", description="The id of the last event received.")
    ] = None,
) -> EventStreamResponse:
    """New entries you may see (public ones and your own), as Server-Sent Events; send
    ``Last-Event-ID`` to resume after the last one you received."""
    viewer = _viewer(user, everyone)
    after = int(last_event_id) if last_event_id else None
    settings: Settings = request.app.state.settings
    body = entry_stream(
        hub=hub,
        model=model,
        sessions=request.app.state.sessionmakers["activity"],
        readers=readers,
        viewer=viewer,
        last_event_id=after,
        heartbeat=settings.activity.stream_heartbeat,
        max_age=settings.activity.stream_max_age,
    )
    return EventStreamResponse(body, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
