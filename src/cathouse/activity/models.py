"""The activity schema: the read model as PostgreSQL keeps it when Redis is not configured, and the
ids of the events applied to it.

No foreign keys: the read model is derived, rebuilt from the outbox at will, and must outlive the
rows it mentions.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Identity, Index, Integer, SmallInteger, String, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cathouse.platform.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata("activity")


class AppliedEvent(Base):
    """One event applied to the read model, written in the transaction that applied it."""

    __tablename__ = "applied_events"

    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FeedEntry(Base):
    """One entry of the feeds. ``id`` is the stream position: entries commit in its order."""

    __tablename__ = "entries"
    __table_args__ = (
        Index("ix_entries_public", "id", postgresql_where=text("public")),
        Index("ix_entries_cat_id", "cat_id", "id", postgresql_where=text("public")),
        Index("ix_entries_audience", "audience", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(128))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cat_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # Whose own feed shows it.
    audience: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)), server_default="{}")
    public: Mapped[bool] = mapped_column(Boolean)
    anonymous: Mapped[bool] = mapped_column(Boolean, server_default="false")
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB)


class CatRecord(Base):
    """What the projection remembers of a cat: who publishes it, and whether it is published."""

    __tablename__ = "cat_state"

    cat_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    publisher_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(24))


class InstallationRecord(Base):
    __tablename__ = "installation_state"

    installation_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    cat_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(24))
    # Ever provisioned: counted once in the installs' total.
    activated: Mapped[bool] = mapped_column(Boolean)


class ReviewRecord(Base):
    """A review's stars and whether they count: hide and restore events do not repeat them."""

    __tablename__ = "review_state"

    review_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    cat_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    rating: Mapped[int] = mapped_column(SmallInteger)
    visible: Mapped[bool] = mapped_column(Boolean)


class CatStats(Base):
    __tablename__ = "cat_stats"

    cat_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    installs_total: Mapped[int] = mapped_column(Integer, server_default="0")
    installs_active: Mapped[int] = mapped_column(Integer, server_default="0")
    rating_count: Mapped[int] = mapped_column(Integer, server_default="0")
    rating_sum: Mapped[int] = mapped_column(Integer, server_default="0")
    rating_1: Mapped[int] = mapped_column(Integer, server_default="0")
    rating_2: Mapped[int] = mapped_column(Integer, server_default="0")
    rating_3: Mapped[int] = mapped_column(Integer, server_default="0")
    rating_4: Mapped[int] = mapped_column(Integer, server_default="0")
    rating_5: Mapped[int] = mapped_column(Integer, server_default="0")


class PlatformStat(Base):
    __tablename__ = "platform_stats"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, server_default="0")
