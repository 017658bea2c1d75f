"""The read model in the activity schema.

One transaction per batch of events: each event's id goes into ``applied_events`` first (a
conflict means it was applied before, and nothing else happens), then its effects. Entries are
numbered under a transaction-level advisory lock, so they commit in the order of their ids and
a stream that has seen id N never finds a smaller id appear later. The transaction ends with a
``NOTIFY activity_entries``, which PostgreSQL delivers only if it commits.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, cast

from loguru import logger
from sqlalchemy import ColumnElement, Row, Table, and_, delete, func, or_, select, text, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cathouse.activity.models import (
    AppliedEvent,
    CatRecord,
    CatStats,
    FeedEntry,
    InstallationRecord,
    PlatformStat,
    ReviewRecord,
)
from cathouse.activity.projection import Malformed, project, skip_reason
from cathouse.activity.readmodel import (
    CAT_COUNTERS,
    PLATFORM_COUNTERS,
    CatState,
    Effects,
    Entry,
    Feed,
    InstallationState,
    NewEntry,
    Outcome,
    Rebuilding,
    ReviewState,
)
from cathouse.platform.outbox.relay import Event

NOTIFY_CHANNEL = "activity_entries"
# Held (shared) by every live apply, (exclusively) by a rebuild for its whole run.
REBUILD_LOCK = zlib.crc32(b"cathouse.activity.rebuild")
# Held from numbering an entry to the commit: ids commit in order.
ENTRY_LOCK = zlib.crc32(b"cathouse.activity.entries")

_APPLIED = cast(Table, AppliedEvent.__table__)
_ENTRIES = cast(Table, FeedEntry.__table__)
_CATS = cast(Table, CatRecord.__table__)
_INSTALLATIONS = cast(Table, InstallationRecord.__table__)
_REVIEWS = cast(Table, ReviewRecord.__table__)
_CAT_STATS = cast(Table, CatStats.__table__)
_PLATFORM = cast(Table, PlatformStat.__table__)
_TABLES = (_APPLIED, _ENTRIES, _CATS, _INSTALLATIONS, _REVIEWS, _CAT_STATS, _PLATFORM)


async def notify_entries(engine: AsyncEngine, newest: int) -> None:
    """Tell listening streams that entries up to ``newest`` exist (the Redis store's way)."""
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": NOTIFY_CHANNEL, "id": str(newest)})


class _State:
    """The projection's memory, read inside the applying transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def cat(self, cat_id: uuid.UUID) -> CatState | None:
        row = (await self.conn.execute(select(_CATS).where(_CATS.c.cat_id == cat_id))).first()
        return None if row is None else CatState(row.cat_id, row.publisher_id, row.status)

    async def installation(self, installation_id: uuid.UUID) -> InstallationState | None:
        statement = select(_INSTALLATIONS).where(_INSTALLATIONS.c.installation_id == installation_id)
        row = (await self.conn.execute(statement)).first()
        if row is None:
            return None
        return InstallationState(row.installation_id, row.cat_id, row.user_id, row.status, row.activated)

    async def review(self, review_id: uuid.UUID) -> ReviewState | None:
        row = (await self.conn.execute(select(_REVIEWS).where(_REVIEWS.c.review_id == review_id))).first()
        return None if row is None else ReviewState(row.review_id, row.cat_id, row.user_id, row.rating, row.visible)


def _entry(row: Row[Any]) -> Entry:
    return Entry(
        id=row.id,
        event_id=str(row.event_id),
        seq=row.seq,
        type=row.event_type,
        occurred_at=row.occurred_at,
        cat_id=row.cat_id,
        user_id=row.user_id,
        audience=frozenset(row.audience),
        public=row.public,
        anonymous=row.anonymous,
        data=row.data,
        details=row.details,
    )


def _where(feed: Feed) -> ColumnElement[bool]:
    if feed.kind == "public":
        return _ENTRIES.c.public
    if feed.kind == "user":
        return _ENTRIES.c.audience.contains([feed.key])
    if feed.kind == "cat":
        return and_(_ENTRIES.c.cat_id == feed.key, _ENTRIES.c.public)
    return true()


def _upsert(table: Table, key: str, values: dict[str, Any]) -> Any:
    statement = insert(table).values(values)
    return statement.on_conflict_do_update(
        index_elements=[key], set_={k: statement.excluded[k] for k in values if k != key}
    )


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
        outcomes: list[Outcome] = []
        numbering = False
        newest = 0
        for event in events:
            reason = skip_reason(event)
            if reason is not None:
                outcomes.append(Outcome(event, "skipped", reason=reason))
                continue
            marked = await conn.scalar(
                insert(_APPLIED)
                .values(event_id=uuid.UUID(event.id), seq=event.seq, occurred_at=event.occurred_at)
                .on_conflict_do_nothing()
                .returning(_APPLIED.c.event_id)
            )
            if marked is None:
                outcomes.append(Outcome(event, "duplicate"))
                continue
            try:
                effects = await project(event, _State(conn))
            except Malformed as exc:
                # Its id stays recorded: a redelivery is as malformed as this one.
                logger.warning("activity event malformed; skipped", error=str(exc))
                outcomes.append(Outcome(event, "skipped", reason="malformed"))
                continue
            entry = None
            if effects.entry is not None:
                if not numbering:
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ENTRY_LOCK})
                    numbering = True
                entry = await self._add_entry(conn, effects.entry)
                newest = entry.id
            await self._write(conn, effects)
            outcomes.append(Outcome(event, "applied", entry))
        if newest:
            await conn.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": NOTIFY_CHANNEL, "id": str(newest)})
        return outcomes

    async def _add_entry(self, conn: AsyncConnection, new: NewEntry) -> Entry:
        values = {
            "event_id": uuid.UUID(new.event_id),
            "seq": new.seq,
            "event_type": new.type,
            "occurred_at": new.occurred_at,
            "cat_id": new.cat_id,
            "user_id": new.user_id,
            "audience": sorted(new.audience),
            "public": new.public,
            "anonymous": new.anonymous,
            "data": new.data,
            "details": new.details,
        }
        row = (await conn.execute(insert(_ENTRIES).values(values).returning(*_ENTRIES.c))).one()
        return _entry(row)

    async def _write(self, conn: AsyncConnection, effects: Effects) -> None:
        # The state classes' fields are the tables' columns.
        if effects.cat is not None:
            await conn.execute(_upsert(_CATS, "cat_id", asdict(effects.cat)))
        if effects.installation is not None:
            await conn.execute(_upsert(_INSTALLATIONS, "installation_id", asdict(effects.installation)))
        if effects.review is not None:
            await conn.execute(_upsert(_REVIEWS, "review_id", asdict(effects.review)))
        if effects.review_removed is not None:
            await conn.execute(delete(_REVIEWS).where(_REVIEWS.c.review_id == effects.review_removed))
        if effects.cat_id is not None and effects.cat_counters:
            statement = insert(_CAT_STATS).values(cat_id=effects.cat_id, **effects.cat_counters)
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["cat_id"],
                    set_={k: _CAT_STATS.c[k] + statement.excluded[k] for k in effects.cat_counters},
                )
            )
        if effects.platform_counters:
            rows = [{"name": k, "value": v} for k, v in sorted(effects.platform_counters.items())]
            statement = insert(_PLATFORM).values(rows)
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["name"], set_={"value": _PLATFORM.c.value + statement.excluded.value}
                )
            )

    # --- reading -------------------------------------------------------------------------------

    async def page(self, feed: Feed, *, before: int | None, limit: int) -> list[Entry]:
        statement = select(_ENTRIES).where(_where(feed)).order_by(_ENTRIES.c.id.desc()).limit(limit)
        if before is not None:
            statement = statement.where(_ENTRIES.c.id < before)
        async with self.engine.connect() as conn:
            return [_entry(row) for row in await conn.execute(statement)]

    async def since(self, feeds: Sequence[Feed], after: int, *, limit: int) -> list[Entry]:
        statement = (
            select(_ENTRIES)
            .where(_ENTRIES.c.id > after, or_(*(_where(f) for f in feeds)))
            .order_by(_ENTRIES.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [_entry(row) for row in await conn.execute(statement)]

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
