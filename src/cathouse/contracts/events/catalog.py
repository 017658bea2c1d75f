"""What the catalog publishes: a cat's way through review and publication, and its reviews.

Every payload names the cat (``cat_id``, ``slug``); the aggregate is the cat, for review events
too, so a cat's rating events arrive in the order they were counted.
"""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from cathouse.contracts.events.base import DomainEvent

_BY_ADMIN = "The admin who did it."


class CatEvent(DomainEvent):
    aggregate: ClassVar[str] = "cat"
    aggregate_key: ClassVar[str] = "cat_id"

    cat_id: UUID = Field(description="The cat.")
    slug: str = Field(description="The cat's slug when it happened.")


class CatSubmitted(CatEvent):
    """A developer submitted a draft cat for review."""

    type: ClassVar[str] = "cat.submitted"

    publisher_id: UUID | None = Field(description="Its publisher (null for the platform's own, synced cats).")


class CatPublished(CatEvent):
    """An admin approved the cat (or a manifest sync published it)."""

    type: ClassVar[str] = "cat.published"

    name: str = Field(description="The cat's display name.")
    category: str = Field(description="Its category's slug.")
    publisher_id: UUID | None = Field(description="Its publisher (null for the platform's own, synced cats).")
    version: str | None = Field(description="The version installations get by default, if it has one.")


class CatRejected(CatEvent):
    """An admin turned a submitted cat down."""

    type: ClassVar[str] = "cat.rejected"

    reason: str = Field(description="Why, as the publisher is told.")
    by: UUID = Field(description=_BY_ADMIN)


class CatUpdated(CatEvent):
    """A published cat's listing changed."""

    type: ClassVar[str] = "cat.updated"

    fields: list[str] = Field(description="The names of the fields that changed, never their values.")


class CatVersionPublished(CatEvent):
    """A published cat got a new version."""

    type: ClassVar[str] = "cat.version_published"

    version: str = Field(description="The version (semver).")
    permissions: list[str] = Field(description="The permissions the version asks for.")
    current: bool = Field(description="Whether installations now get this version by default.")


class CatSuspended(CatEvent):
    """An admin took a published cat down for now."""

    type: ClassVar[str] = "cat.suspended"

    reason: str = Field(description="Why, as the publisher is told.")
    by: UUID = Field(description=_BY_ADMIN)


class CatReinstated(CatEvent):
    """A suspended or delisted cat is published again."""

    type: ClassVar[str] = "cat.reinstated"

    by: UUID = Field(description=_BY_ADMIN)


class CatDelisted(CatEvent):
    """The cat left the catalog for good."""

    type: ClassVar[str] = "cat.delisted"

    reason: str = Field(description="Why, as the publisher is told.")
    by: UUID | None = Field(description="The admin who did it (or ran the sync that found the folder gone), if any.")
    orphaned: bool = Field(description="True when the cat's manifest folder went (a sync delisted it).")


class CatSyncFailed(CatEvent):
    """A synced cat's manifest no longer validates; the cat stays as it was."""

    type: ClassVar[str] = "cat.sync_failed"

    problems: int = Field(ge=1, description="How many problems the manifest has.")


class ReviewEvent(CatEvent):
    review_id: UUID = Field(description="The review.")


class ReviewCreated(ReviewEvent):
    """A user reviewed a cat."""

    type: ClassVar[str] = "review.created"

    user_id: UUID = Field(description="The review's author.")
    rating: int = Field(ge=1, le=5, description="Stars, 1 to 5.")
    verified: bool = Field(description="Whether the author had installed the cat.")


class ReviewUpdated(ReviewEvent):
    """A review's author edited it."""

    type: ClassVar[str] = "review.updated"

    user_id: UUID = Field(description="The review's author.")
    rating: int = Field(ge=1, le=5, description="Stars now, 1 to 5.")
    previous_rating: int = Field(ge=1, le=5, description="Stars before the edit.")


class ReviewDeleted(ReviewEvent):
    """The author deleted their review."""

    type: ClassVar[str] = "review.deleted"

    user_id: UUID = Field(description="The review's author.")
    rating: int = Field(ge=1, le=5, description="The stars it had.")


class ReviewHidden(ReviewEvent):
    """An admin hid a review: its rating stops counting."""

    type: ClassVar[str] = "review.hidden"

    reason: str | None = Field(description="Why, as the author is told.")
    by: UUID = Field(description=_BY_ADMIN)


class ReviewRestored(ReviewEvent):
    """An admin made a hidden review visible again: its rating counts again."""

    type: ClassVar[str] = "review.restored"

    by: UUID = Field(description=_BY_ADMIN)


class ReviewReplied(ReviewEvent):
    """The cat's publisher replied to a review."""

    type: ClassVar[str] = "review.replied"

    by: UUID = Field(description="The publisher (or, for the platform's own cats, the admin) who replied.")


EVENTS: tuple[type[DomainEvent], ...] = (
    CatSubmitted,
    CatPublished,
    CatRejected,
    CatUpdated,
    CatVersionPublished,
    CatSuspended,
    CatReinstated,
    CatDelisted,
    CatSyncFailed,
    ReviewCreated,
    ReviewUpdated,
    ReviewDeleted,
    ReviewHidden,
    ReviewRestored,
    ReviewReplied,
)
