"""The catalog schema: categories, cats, their versions, reviews and image assets."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cathouse.platform.db import schema_metadata, string_enum


class Base(DeclarativeBase):
    metadata = schema_metadata("catalog")


# The statuses and kinds below are VARCHAR columns whose CHECK constraints (migration
# catalog_0002) list the same values.


class CatStatus(enum.StrEnum):
    DRAFT = "draft"
    PENDING_REVIEW = "pending_review"
    PUBLISHED = "published"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    DELISTED = "delisted"


class CatSource(enum.StrEnum):
    API = "api"
    MANIFEST = "manifest"


class VersionStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class ReviewStatus(enum.StrEnum):
    VISIBLE = "visible"
    HIDDEN = "hidden"


class AssetKind(enum.StrEnum):
    ICON = "icon"
    SCREENSHOT = "screenshot"


class Category(Base):
    __tablename__ = "categories"

    slug: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(300))
    position: Mapped[int] = mapped_column(Integer)


# Both are kept by PostgreSQL itself from the columns they read, so they can never drift.
SEARCH_VECTOR = (
    "setweight(to_tsvector('english', name), 'A') || "
    "setweight(to_tsvector('english', catalog.tags_text(tags)), 'B') || "
    "setweight(to_tsvector('english', summary), 'B') || "
    "setweight(to_tsvector('english', description), 'C')"
)


class Cat(Base):
    __tablename__ = "cats"
    # The computed columns (rating_average) come back with every INSERT and UPDATE (RETURNING):
    # read after a flush, an expired one would be loaded lazily, which async sessions cannot do.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 - SQLAlchemy reads it once
    # The review queue: the cats of one status, a page at a time in slug order.
    __table_args__ = (Index("ix_cats_status_slug", "status", "slug"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    summary: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(ForeignKey("catalog.categories.slug"))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(32)), server_default=text("'{}'"))
    homepage: Mapped[str | None] = mapped_column(Text)
    support_email: Mapped[str | None] = mapped_column(String(320))
    support_url: Mapped[str | None] = mapped_column(Text)
    # None: a cat the platform itself publishes from manifests, managed by admins. The foreign
    # key to auth.users lives in the migration; the ORM does not map another service's tables.
    publisher_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    status: Mapped[CatStatus] = mapped_column(string_enum(CatStatus, 16), server_default=CatStatus.DRAFT.value)
    moderation_reason: Mapped[str | None] = mapped_column(String(500))

    # What the current (newest published) version requests, for the permission filter.
    current_version_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    permissions: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default=text("'{}'"))

    rating_count: Mapped[int] = mapped_column(Integer, server_default="0")
    rating_sum: Mapped[int] = mapped_column(Integer, server_default="0")
    rating_1: Mapped[int] = mapped_column(Integer, server_default="0")
    rating_2: Mapped[int] = mapped_column(Integer, server_default="0")
    rating_3: Mapped[int] = mapped_column(Integer, server_default="0")
    rating_4: Mapped[int] = mapped_column(Integer, server_default="0")
    rating_5: Mapped[int] = mapped_column(Integer, server_default="0")
    # 0 until someone rates the cat (see ``rating_count``).
    rating_average: Mapped[float] = mapped_column(
        Float, Computed("CASE WHEN rating_count = 0 THEN 0 ELSE rating_sum::float8 / rating_count END", persisted=True)
    )
    install_count: Mapped[int] = mapped_column(Integer, server_default="0")
    active_install_count: Mapped[int] = mapped_column(Integer, server_default="0")

    search_vector: Mapped[Any] = mapped_column(TSVECTOR, Computed(SEARCH_VECTOR, persisted=True), deferred=True)

    # Manifest-driven cats: where they came from and what last went wrong.
    source: Mapped[CatSource] = mapped_column(string_enum(CatSource, 16), server_default=CatSource.API.value)
    manifest_path: Mapped[str | None] = mapped_column(String(300))
    manifest_hash: Mapped[str | None] = mapped_column(String(64))
    sync_error: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    orphaned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def histogram(self) -> dict[str, int]:
        return {str(n): getattr(self, f"rating_{n}") for n in range(1, 6)}


class CatVersion(Base):
    """What installations pin and the proxy enforces. Immutable once published."""

    __tablename__ = "cat_versions"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    cat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog.cats.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(64))
    # The semver precedence, for "newest first" without parsing in SQL.
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer)
    patch: Mapped[int] = mapped_column(Integer)
    prerelease: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[VersionStatus] = mapped_column(
        string_enum(VersionStatus, 16), server_default=VersionStatus.DRAFT.value
    )
    base_url: Mapped[str] = mapped_column(Text)
    credentials: Mapped[dict[str, Any]] = mapped_column(JSONB)
    permissions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    endpoints: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    settings_schema: Mapped[dict[str, Any]] = mapped_column(JSONB)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer)
    changelog: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    cat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog.cats.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))  # foreign key to auth.users
    rating: Mapped[int] = mapped_column(SmallInteger)
    title: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[ReviewStatus] = mapped_column(
        string_enum(ReviewStatus, 16), server_default=ReviewStatus.VISIBLE.value
    )
    hidden_reason: Mapped[str | None] = mapped_column(String(500))
    verified: Mapped[bool] = mapped_column(server_default=text("false"))
    reply_body: Mapped[str | None] = mapped_column(Text)
    reply_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Asset(Base):
    """An icon or screenshot of a cat; the bytes live in storage under ``storage_key``."""

    __tablename__ = "assets"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    cat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog.cats.id", ondelete="CASCADE"))
    kind: Mapped[AssetKind] = mapped_column(string_enum(AssetKind, 16))
    position: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    content_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookSecret(Base):
    """A cat's key for signing provisioning webhooks, sealed by the master key.

    After a rotation the old secret signs too, until ``expires_at``: receivers switch over
    without missing a delivery.
    """

    __tablename__ = "webhook_secrets"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    cat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog.cats.id", ondelete="CASCADE"), index=True)
    sealed_secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SearchWord(Base):
    """Every word the catalog's cats use, for correcting typos in queries (filled by a trigger)."""

    __tablename__ = "search_words"
    __table_args__ = (
        Index("ix_search_words_trgm", "word", postgresql_using="gist", postgresql_ops={"word": "gist_trgm_ops"}),
    )

    word: Mapped[str] = mapped_column(Text, primary_key=True)
    stem: Mapped[str | None] = mapped_column(Text, index=True)


class SearchEntry(Base):
    """What search filters, sorts, ranks and counts by, for each published cat: a narrow copy
    of ``cats`` kept by triggers in the same transaction (migration ``catalog_0005``). Never
    written by the application."""

    __tablename__ = "search_entries"

    cat_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("catalog.cats.id", ondelete="CASCADE"), primary_key=True
    )
    search_vector: Mapped[Any] = mapped_column(TSVECTOR)
    category: Mapped[str] = mapped_column(String(32))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    permissions: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    publisher_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    install_count: Mapped[int] = mapped_column(Integer)
    rating_average: Mapped[float] = mapped_column(Float)
    rating_count: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # lower(name), compared byte by byte: the name order.
    name_key: Mapped[str] = mapped_column(Text(collation="C"))


class SearchFacetCount(Base):
    """Published cats per category (``tag`` '') and per category and tag, kept by a trigger on
    ``search_entries``: the facets of browsing without words, without counting."""

    __tablename__ = "search_facet_counts"

    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    tag: Mapped[str] = mapped_column(String(32), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class SearchTermFacet(Base):
    """Entries per lexeme of their vectors, per category (``tag`` '') and per category and tag,
    kept by a trigger on ``search_entries`` (migration ``catalog_0006``): the facets of a search
    for one term, without counting its matches."""

    __tablename__ = "search_term_facets"

    lexeme: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    tag: Mapped[str] = mapped_column(String(32), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class OAuthClient(Base):
    """The OAuth 2.0 client a cat's publisher registered at the cat's provider.

    The secret is sealed in an envelope: its own data key encrypts it, bound to the cat and the
    client id, and a key derived from the master key wraps that data key, bound to the cat.
    """

    __tablename__ = "oauth_clients"

    cat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog.cats.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(200))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_secret: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
