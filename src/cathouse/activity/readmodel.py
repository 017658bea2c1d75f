"""The read model's vocabulary, and the one interface its two stores (PostgreSQL, Redis) implement.

An *entry* is what a feed shows: one per event worth telling, with who may see it. *State* is
what the projection remembers between events of one aggregate (a cat's publisher, an
installation's status, a review's rating) so that an event that does not repeat it can still
be applied. *Counters* are the statistics. A store applies an event's effects atomically with
the record that the event was applied, so a redelivered event changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from cathouse.platform.outbox.relay import Event

CAT_COUNTERS = (
    "installs_total",
    "installs_active",
    "rating_count",
    "rating_sum",
    "rating_1",
    "rating_2",
    "rating_3",
    "rating_4",
    "rating_5",
)
PLATFORM_COUNTERS = (
    "cats_published",
    "installations_total",
    "installations_active",
    "users_registered",
    "reviews",
    "events_applied",
)


@dataclass(frozen=True)
class NewEntry:
    """An entry before the store numbers it.

    ``public`` entries appear in the global feed and their cat's feed; ``audience`` are the users
    whose own feed (``/me``) shows it. ``data`` is shown to everyone who sees the entry, ``details``
    only to its audience (and admins); an ``anonymous`` entry names its user only to them too.
    """

    event_id: str
    seq: int
    type: str
    occurred_at: datetime
    cat_id: uuid.UUID | None
    user_id: uuid.UUID | None
    audience: frozenset[uuid.UUID]
    public: bool
    anonymous: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry(NewEntry):
    """An entry as stored: ``id`` grows with every entry, in the order they were committed."""

    id: int = 0

    def content(self) -> tuple[Any, ...]:
        """Everything but the number: what a rebuild must reproduce exactly."""
        return (
            self.event_id,
            self.seq,
            self.type,
            self.occurred_at,
            self.cat_id,
            self.user_id,
            tuple(sorted(map(str, self.audience))),
            self.public,
            self.anonymous,
            self.data,
            self.details,
        )


@dataclass(frozen=True)
class CatState:
    cat_id: uuid.UUID
    publisher_id: uuid.UUID | None
    status: str


@dataclass(frozen=True)
class InstallationState:
    installation_id: uuid.UUID
    cat_id: uuid.UUID
    user_id: uuid.UUID
    status: str
    activated: bool


@dataclass(frozen=True)
class ReviewState:
    review_id: uuid.UUID
    cat_id: uuid.UUID
    user_id: uuid.UUID
    rating: int
    visible: bool


@dataclass
class Effects:
    """What applying one event changes."""

    entry: NewEntry | None = None
    cat_id: uuid.UUID | None = None
    cat_counters: dict[str, int] = field(default_factory=dict)
    platform_counters: dict[str, int] = field(default_factory=dict)
    cat: CatState | None = None
    installation: InstallationState | None = None
    review: ReviewState | None = None
    review_removed: uuid.UUID | None = None

    def count(self, name: str, by: int = 1) -> None:
        if by:
            self.cat_counters[name] = self.cat_counters.get(name, 0) + by

    def count_platform(self, name: str, by: int = 1) -> None:
        if by:
            self.platform_counters[name] = self.platform_counters.get(name, 0) + by


class State(Protocol):
    """What the projection may ask of a store about earlier events, inside the apply."""

    async def cat(self, cat_id: uuid.UUID) -> CatState | None: ...

    async def installation(self, installation_id: uuid.UUID) -> InstallationState | None: ...

    async def review(self, review_id: uuid.UUID) -> ReviewState | None: ...


FeedKind = Literal["public", "all", "user", "cat"]


@dataclass(frozen=True)
class Feed:
    """One list of entries: the public global feed, every entry (admins), a user's, a cat's (public)."""

    kind: FeedKind
    key: uuid.UUID | None = None

    @classmethod
    def public(cls) -> Feed:
        return cls("public")

    @classmethod
    def everything(cls) -> Feed:
        return cls("all")

    @classmethod
    def user(cls, user_id: uuid.UUID) -> Feed:
        return cls("user", user_id)

    @classmethod
    def cat(cls, cat_id: uuid.UUID) -> Feed:
        return cls("cat", cat_id)


@dataclass(frozen=True)
class Outcome:
    """What became of one event: applied (with the entry it made, if any), a duplicate, or skipped."""

    event: Event
    status: Literal["applied", "duplicate", "skipped"]
    entry: Entry | None = None
    reason: str | None = None


class Rebuilding(Exception):
    """The read model is being rebuilt: the live consumer waits (the relay retries the event)."""


class ReadModel(Protocol):
    """Feeds and statistics, in PostgreSQL or Redis."""

    async def apply(self, events: Sequence[Event], *, rebuild: bool = False) -> list[Outcome]:
        """Apply ``events`` in order, each at most once. Raises :class:`Rebuilding` while a rebuild
        runs, unless this is the rebuild."""
        ...

    async def page(self, feed: Feed, *, before: int | None, limit: int) -> list[Entry]:
        """Newest first, ids below ``before``."""
        ...

    async def since(self, feeds: Sequence[Feed], after: int, *, limit: int) -> list[Entry]:
        """Oldest first, ids above ``after``, from any of ``feeds`` (each entry once)."""
        ...

    async def latest_id(self) -> int: ...

    async def cat_counters(self, cat_id: uuid.UUID) -> dict[str, int]: ...

    async def platform_counters(self) -> dict[str, int]: ...

    async def start_rebuild(self) -> None:
        """Stop the live consumer from applying, and empty the read model."""
        ...

    async def finish_rebuild(self) -> None: ...

    async def close(self) -> None: ...
