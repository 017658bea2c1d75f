"""API models of the activity service."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from cathouse.contracts.events.catalog import CatPublished, ReviewCreated
from cathouse.contracts.events.installation import InstallationCreated


class ActivityCatRef(BaseModel):
    id: uuid.UUID
    slug: str | None
    name: str | None = Field(description="Absent when the cat no longer exists.")


class UserRef(BaseModel):
    id: uuid.UUID
    display_name: str | None


class EntryOut(BaseModel):
    """Something that happened. Its ``type`` is the event's: ``GET /api/v1/events/asyncapi.json``
    lists them all (``cathouse.contracts.events``)."""

    id: int = Field(description="The entry's position: newer entries have larger ids (the stream's event id).")
    type: str = Field(examples=[e.type for e in (CatPublished, ReviewCreated, InstallationCreated)])
    occurred_at: datetime
    cat: ActivityCatRef | None
    user: UserRef | None = Field(
        description="Whom it is about; absent where it is not told (who installed a cat is told only to them)."
    )
    data: dict[str, Any] = Field(description="What the event says, as far as the caller may know it.")


class ActivityPage(BaseModel):
    items: list[EntryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; absent on the last one.")


class Installs(BaseModel):
    active: int = Field(description="Installations running now.")
    total: int = Field(description="Installations ever provisioned.")


class Rating(BaseModel):
    count: int
    average: float | None
    histogram: dict[str, int] = Field(description="Reviews per star, '1' to '5'.")


class DayCalls(BaseModel):
    day: date
    calls: int = Field(description="Calls to the cat through the proxy that day (UTC).")
    allowed: int = Field(description="Of those, the ones let through to the cat.")


class CatStatsOut(BaseModel):
    cat: ActivityCatRef
    installs: Installs
    rating: Rating
    proxy_calls: list[DayCalls] = Field(description="Per day, oldest first, today last.")


class PlatformStatsOut(BaseModel):
    cats_published: int = Field(description="Cats in the catalog now.")
    installations: Installs
    users_registered: int
    reviews: int = Field(description="Reviews that count (not hidden, not deleted).")
    events_applied: int = Field(description="Events the read model was built from.")
