"""Applying a batch of events to the PostgreSQL read model in one transaction, set-based.

Every id is recorded first, in one insert: an id already there (or twice in the batch) marks a
duplicate, and nothing else of it happens. The projection then runs over the fresh events in
order, reading state through :class:`BatchState`, which loads what the batch touches in three
queries and remembers what earlier events of the batch left, so a later event of the same
aggregate sees it. The effects are written last, coalesced: one insert of every entry (numbered in
the batch's order), one upsert per state table, one of the cats' counters summed per cat, one of
the platform's.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, cast

from loguru import logger
from sqlalchemy import Table, delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from cathouse.activity.models import (
    AppliedEvent,
    CatRecord,
    CatStats,
    FeedEntry,
    InstallationRecord,
    PlatformStat,
    ReviewRecord,
)
from cathouse.activity.projection import Malformed, payload_ids, project, triage
from cathouse.activity.readmodel import (
    CAT_COUNTERS,
    CatState,
    Effects,
    Entry,
    InstallationState,
    NewEntry,
    Outcome,
    ReviewState,
)
from cathouse.platform.outbox.relay import Event

APPLIED = cast(Table, AppliedEvent.__table__)
ENTRIES = cast(Table, FeedEntry.__table__)
CATS = cast(Table, CatRecord.__table__)
INSTALLATIONS = cast(Table, InstallationRecord.__table__)
REVIEWS = cast(Table, ReviewRecord.__table__)
CAT_STATS = cast(Table, CatStats.__table__)
PLATFORM = cast(Table, PlatformStat.__table__)


class BatchState:
    """The projection's memory for one batch: the stored state, then what the batch changed."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.cats: dict[uuid.UUID, CatState | None] = {}
        self.installations: dict[uuid.UUID, InstallationState | None] = {}
        self.reviews: dict[uuid.UUID, ReviewState | None] = {}

    async def load(self, events: Sequence[Event]) -> None:
        """Read the state every event of the batch may ask for, three queries in all."""
        await self._load(CATS, "cat_id", payload_ids(events, "cat_id"), self.cats, CatState)
        await self._load(
            INSTALLATIONS,
            "installation_id",
            payload_ids(events, "installation_id"),
            self.installations,
            InstallationState,
        )
        await self._load(REVIEWS, "review_id", payload_ids(events, "review_id"), self.reviews, ReviewState)

    async def _load(self, table: Table, key: str, ids: set[uuid.UUID], into: dict[Any, Any], kind: Any) -> None:
        ids -= into.keys()
        if not ids:
            return
        into.update(dict.fromkeys(ids))
        for row in await self.conn.execute(select(table).where(table.c[key].in_(ids))):
            # The state classes' fields are the tables' columns.
            into[row[0]] = kind(**row._mapping)

    async def cat(self, cat_id: uuid.UUID) -> CatState | None:
        await self._load(CATS, "cat_id", {cat_id}, self.cats, CatState)
        return self.cats[cat_id]

    async def installation(self, installation_id: uuid.UUID) -> InstallationState | None:
        await self._load(INSTALLATIONS, "installation_id", {installation_id}, self.installations, InstallationState)
        return self.installations[installation_id]

    async def review(self, review_id: uuid.UUID) -> ReviewState | None:
        await self._load(REVIEWS, "review_id", {review_id}, self.reviews, ReviewState)
        return self.reviews[review_id]

    def remember(self, effects: Effects) -> None:
        _keep(self.cats, self.installations, self.reviews, effects)


def _keep(
    cats: dict[uuid.UUID, Any],
    installations: dict[uuid.UUID, Any],
    reviews: dict[uuid.UUID, Any],
    effects: Effects,
) -> None:
    """The state an event leaves, by aggregate id (a removed review as None)."""
    if effects.cat is not None:
        cats[effects.cat.cat_id] = effects.cat
    if effects.installation is not None:
        installations[effects.installation.installation_id] = effects.installation
    if effects.review is not None:
        reviews[effects.review.review_id] = effects.review
    if effects.review_removed is not None:
        reviews[effects.review_removed] = None


class Writes:
    """A batch's effects, coalesced into a few statements."""

    def __init__(self) -> None:
        self.entries: list[NewEntry] = []
        self.cats: dict[uuid.UUID, CatState] = {}
        self.installations: dict[uuid.UUID, InstallationState] = {}
        self.reviews: dict[uuid.UUID, ReviewState | None] = {}  # None: removed
        self.cat_counters: dict[uuid.UUID, Counter[str]] = defaultdict(Counter)
        self.platform_counters: Counter[str] = Counter()

    def add(self, effects: Effects) -> None:
        if effects.entry is not None:
            self.entries.append(effects.entry)
        _keep(self.cats, self.installations, self.reviews, effects)
        if effects.cat_id is not None and effects.cat_counters:
            self.cat_counters[effects.cat_id].update(effects.cat_counters)
        self.platform_counters.update(effects.platform_counters)

    async def write(self, conn: AsyncConnection, entry_lock: int) -> dict[str, Entry]:
        """Write everything; returns the entries made, by event id."""
        made: dict[str, Entry] = {}
        if self.entries:
            # Held to the commit: entries commit in the order of their ids.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": entry_lock})
            rows = [_entry_values(new) for new in self.entries]
            # One statement numbers its rows in the order they are listed: the batch's order.
            for row in await conn.execute(insert(ENTRIES).values(rows).returning(*ENTRIES.c)):
                entry = entry_of(row)
                made[entry.event_id] = entry
        # In key order, as every batch locks them: two consumers' batches cannot deadlock.
        installations = self.installations.items()
        await _upsert(conn, CATS, "cat_id", [asdict(s) for _, s in sorted(self.cats.items())])
        await _upsert(conn, INSTALLATIONS, "installation_id", [asdict(s) for _, s in sorted(installations)])
        await _upsert(conn, REVIEWS, "review_id", [asdict(s) for _, s in sorted(self.reviews.items()) if s is not None])
        removed = [review_id for review_id, s in self.reviews.items() if s is None]
        if removed:
            await conn.execute(delete(REVIEWS).where(REVIEWS.c.review_id.in_(removed)))
        await self._count(conn)
        return made

    async def _count(self, conn: AsyncConnection) -> None:
        cats = [  # in key order too (see ``write``)
            {"cat_id": cat_id, **{name: moved.get(name, 0) for name in CAT_COUNTERS}}
            for cat_id, moved in sorted(self.cat_counters.items())
            if any(moved.values())
        ]
        if cats:
            statement = insert(CAT_STATS).values(cats)
            set_ = {k: CAT_STATS.c[k] + statement.excluded[k] for k in CAT_COUNTERS}
            await conn.execute(statement.on_conflict_do_update(index_elements=["cat_id"], set_=set_))
        platform = [{"name": k, "value": v} for k, v in sorted(self.platform_counters.items()) if v]
        if platform:
            statement = insert(PLATFORM).values(platform)
            set_ = {"value": PLATFORM.c.value + statement.excluded.value}
            await conn.execute(statement.on_conflict_do_update(index_elements=["name"], set_=set_))


async def _upsert(conn: AsyncConnection, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    statement = insert(table).values(rows)
    set_ = {k: statement.excluded[k] for k in rows[0] if k != key}
    await conn.execute(statement.on_conflict_do_update(index_elements=[key], set_=set_))


def _entry_values(new: NewEntry) -> dict[str, Any]:
    return {
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


def entry_of(row: Any) -> Entry:
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


async def _mark(conn: AsyncConnection, events: Sequence[Event]) -> set[str]:
    """Record the ids; returns those recorded now (the rest were applied before)."""
    if not events:
        return set()
    rows = [{"event_id": uuid.UUID(e.id), "seq": e.seq, "occurred_at": e.occurred_at} for e in events]
    statement = insert(APPLIED).values(rows).on_conflict_do_nothing().returning(APPLIED.c.event_id)
    return {str(i) for i in await conn.scalars(statement)}


async def apply_batch(conn: AsyncConnection, events: Sequence[Event], entry_lock: int) -> list[Outcome]:
    """Apply ``events`` in order, each at most once, in ``conn``'s transaction."""
    outcomes, candidates = triage(events)
    fresh = await _mark(conn, [events[i] for i in candidates.values()])
    state, writes = BatchState(conn), Writes()
    await state.load([e for e in events if e.id in fresh])
    applied: list[int] = []
    for i in candidates.values():
        event = events[i]
        if event.id not in fresh:
            outcomes[i] = Outcome(event, "duplicate")
            continue
        try:
            effects = await project(event, state)
        except Malformed as exc:
            # Its id stays recorded: a redelivery is as malformed as this one.
            logger.warning("activity event malformed; skipped", error=str(exc))
            outcomes[i] = Outcome(event, "skipped", reason="malformed")
            continue
        state.remember(effects)
        writes.add(effects)
        applied.append(i)
    made = await writes.write(conn, entry_lock)
    for i in applied:
        outcomes[i] = Outcome(events[i], "applied", made.get(events[i].id))
    return [outcomes[i] for i in range(len(events))]
