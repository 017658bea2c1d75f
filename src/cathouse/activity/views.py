"""Shape entries and statistics for a caller: names looked up in batches, details only for those
who may see them.

Entries keep ids, not names: a cat or a person renamed later shows under the new name, and a
deleted account under the name the account now has ("Deleted user").
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.activity.readmodel import Entry
from cathouse.activity.schemas import (
    ActivityCatRef,
    CatStatsOut,
    DayCalls,
    EntryOut,
    Installs,
    PlatformStatsOut,
    Rating,
    UserRef,
)
from cathouse.contracts.reads import AccountReader, AuditReader, CatInfo, CatReader
from cathouse.platform.registry import Registry
from cathouse.platform.security import Principal


@dataclass(frozen=True)
class Viewer:
    """Who is looking, and whether they asked (as an admin) to see everything."""

    principal: Principal | None
    everyone: bool = False

    @property
    def user_id(self) -> uuid.UUID | None:
        return self.principal.user_id if self.principal else None

    def may_see(self, entry: Entry) -> bool:
        return self.everyone or entry.public or (self.user_id is not None and self.user_id in entry.audience)

    def knows(self, entry: Entry) -> bool:
        """Whether the caller is told everything about it: it is theirs, or they are an admin asking."""
        return self.everyone or (self.user_id is not None and self.user_id in entry.audience)


@dataclass(frozen=True)
class Readers:
    """What the feeds read of other services, as those registered it: names of cats and people,
    and the proxy's call counts."""

    cats: CatReader
    accounts: AccountReader
    audit: AuditReader

    @classmethod
    def of(cls, registry: Registry) -> Readers:
        return cls(registry.get(CatReader), registry.get(AccountReader), registry.get(AuditReader))


@dataclass(frozen=True)
class Names:
    cats: dict[uuid.UUID, CatInfo]
    users: dict[uuid.UUID, str]


async def names(session: AsyncSession, readers: Readers, entries: Sequence[Entry]) -> Names:
    cats = await readers.cats.cats_by_id(session, {e.cat_id for e in entries if e.cat_id})
    users = await readers.accounts.display_names(session, {e.user_id for e in entries if e.user_id})
    return Names(cats, users)


def present(entry: Entry, found: Names, viewer: Viewer) -> EntryOut:
    knows = viewer.knows(entry)
    cat = None
    if entry.cat_id is not None:
        info = found.cats.get(entry.cat_id)
        slug = info.slug if info else entry.data.get("slug")
        cat = ActivityCatRef(id=entry.cat_id, slug=slug, name=info.name if info else None)
    user = None
    if entry.user_id is not None and (knows or not entry.anonymous):
        user = UserRef(id=entry.user_id, display_name=found.users.get(entry.user_id))
    return EntryOut(
        id=entry.id,
        type=entry.type,
        occurred_at=entry.occurred_at,
        cat=cat,
        user=user,
        data={**entry.data, **entry.details} if knows else dict(entry.data),
    )


async def present_all(
    session: AsyncSession, readers: Readers, entries: Sequence[Entry], viewer: Viewer
) -> list[EntryOut]:
    found = await names(session, readers, entries)
    return [present(e, found, viewer) for e in entries]


def rating(counters: dict[str, int]) -> Rating:
    count = counters["rating_count"]
    return Rating(
        count=count,
        average=round(counters["rating_sum"] / count, 2) if count else None,
        histogram={str(stars): counters[f"rating_{stars}"] for stars in range(1, 6)},
    )


async def cat_stats(
    session: AsyncSession, audit: AuditReader, cat: CatInfo, counters: dict[str, int], days: int
) -> CatStatsOut:
    calls = await audit.calls_per_day(session, cat.id, days)
    return CatStatsOut(
        cat=ActivityCatRef(id=cat.id, slug=cat.slug, name=cat.name),
        installs=Installs(active=counters["installs_active"], total=counters["installs_total"]),
        rating=rating(counters),
        proxy_calls=[DayCalls(day=d.day, calls=d.calls, allowed=d.allowed) for d in calls],
    )


def platform_stats(counters: dict[str, int]) -> PlatformStatsOut:
    return PlatformStatsOut(
        cats_published=counters["cats_published"],
        installations=Installs(active=counters["installations_active"], total=counters["installations_total"]),
        users_registered=counters["users_registered"],
        reviews=counters["reviews"],
        events_applied=counters["events_applied"],
    )
