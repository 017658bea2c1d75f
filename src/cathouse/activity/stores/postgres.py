"""The read model in the activity schema.

One transaction per batch of events (``postgres_batch``): each event's id goes into
``applied_events`` first (a conflict means it was applied before, and nothing else happens), then
its effects. Entries are
numbered under a transaction-level advisory lock, so they commit in the order of their ids and
a stream that has seen id N never finds a smaller id appear later. The transaction ends with a
``NOTIFY activity_entries``, which PostgreSQL delivers only if it commits.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, func, or_, select, text, true
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cathouse.activity.readmodel import CAT_COUNTERS, PLATFORM_COUNTERS, Entry, Feed, Outcome, Rebuilding
from cathouse.activity.stores.postgres_batch import (
    APPLIED,
    CAT_STATS,
    CATS,
    ENTRIES,
    INSTALLATIONS,
    PLATFORM,
    REVIEWS,
    apply_batch,
    entry_of,
)
from cathouse.platform.outbox.relay import Event

NOTIFY_CHANNEL = "activity_entries"
# Held (shared) by every live apply, (exclusively) by a rebuild for its whole run.
REBUILD_LOCK = zlib.crc32(b"cathouse.activity.rebuild")
# Held from numbering an entry to the commit: ids commit in order.
ENTRY_LOCK = zlib.crc32(b"cathouse.activity.entries")

_ENTRIES, _CAT_STATS, _PLATFORM = ENTRIES, CAT_STATS, PLATFORM
_TABLES = (APPLIED, ENTRIES, CATS, INSTALLATIONS, REVIEWS, CAT_STATS, PLATFORM)


async def notify_entries(engine: AsyncEngine, newest: int) -> None:
    """Tell listening streams that entries up to ``newest`` exist (the Redis store's way)."""
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": NOTIFY_CHANNEL, "id": str(newest)})


def _where(feed: Feed) -> ColumnElement[bool]:
    if feed.kind == "public":
        return _ENTRIES.c.public
    if feed.kind == "user":
        return _ENTRIES.c.audience.contains([feed.key])
    if feed.kind == "cat":
        return and_(_ENTRIES.c.cat_id == feed.key, _ENTRIES.c.public)
    return true()


class PostgresReadModel:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._rebuilding: AsyncConnection | None = None

    # --- writing -------------------------------------------------------------------------------

    async def apply(self, events: Sequence[Event], *, rebuild: bool = False) -> list[Outcome]:
        if rebuild:
            assert self._rebuilding is not None, "start_rebuild first"
            async with self._rebuilding.begin():
                return await self._apply(self._rebuilding, events)
        async with self.engine.begin() as conn:
            if not await conn.scalar(text("SELECT pg_try_advisory_xact_lock_shared(:key)"), {"key": REBUILD_LOCK}):
                raise Rebuilding("the activity read model is being rebuilt")
            return await self._apply(conn, events)

    async def _apply(self, conn: AsyncConnection, events: Sequence[Event]) -> list[Outcome]:
        outcomes = await apply_batch(conn, events, ENTRY_LOCK)
        newest = max((o.entry.id for o in outcomes if o.entry is not None), default=0)
        if newest:
            await conn.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": NOTIFY_CHANNEL, "id": str(newest)})
        return outcomes

    # --- reading -------------------------------------------------------------------------------

    async def page(self, feed: Feed, *, before: int | None, limit: int) -> list[Entry]:
        statement = select(_ENTRIES).where(_where(feed)).order_by(_ENTRIES.c.id.desc()).limit(limit)
        if before is not None:
            statement = statement.where(_ENTRIES.c.id < before)
        async with self.engine.connect() as conn:
            return [entry_of(row) for row in await conn.execute(statement)]

    async def since(self, feeds: Sequence[Feed], after: int, *, limit: int) -> list[Entry]:
        statement = (
            select(_ENTRIES)
            .where(_ENTRIES.c.id > after, or_(*(_where(f) for f in feeds)))
            .order_by(_ENTRIES.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [entry_of(row) for row in await conn.execute(statement)]

    async def latest_id(self) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(select(func.coalesce(func.max(_ENTRIES.c.id), 0))) or 0)

    async def cat_counters(self, cat_id: uuid.UUID) -> dict[str, int]:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(_CAT_STATS).where(_CAT_STATS.c.cat_id == cat_id))).first()
        return {name: int(getattr(row, name)) if row is not None else 0 for name in CAT_COUNTERS}

    async def platform_counters(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = {r.name: int(r.value) for r in await conn.execute(select(_PLATFORM))}
        return {name: rows.get(name, 0) for name in PLATFORM_COUNTERS}

    # --- rebuilding ----------------------------------------------------------------------------

    async def start_rebuild(self) -> None:
        conn = await self.engine.connect()
        try:
            # Waits for live applies to finish; later ones find the lock taken and are retried.
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": REBUILD_LOCK})
            # The entries' ids keep growing: a stream client's Last-Event-ID never points ahead.
            await conn.execute(text(f"TRUNCATE {', '.join(f'activity.{t.name}' for t in _TABLES)}"))
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        self._rebuilding = conn

    async def finish_rebuild(self) -> None:
        conn, self._rebuilding = self._rebuilding, None
        if conn is None:
            return
        try:
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": REBUILD_LOCK})
            await conn.commit()
        finally:
            await conn.close()

    async def close(self) -> None:
        await self.finish_rebuild()
