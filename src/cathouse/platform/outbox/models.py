from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cathouse.platform.db import schema_metadata
from cathouse.platform.service import Component


class Base(DeclarativeBase):
    metadata = schema_metadata("events")


class OutboxEvent(Base):
    """One domain event, written in the transaction of the change it describes."""

    __tablename__ = "outbox"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    # Commit order is not insert order, but one aggregate's writers serialise on its row,
    # so ``seq`` orders each aggregate's events.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    aggregate_type: Mapped[str] = mapped_column(String(64))
    aggregate_id: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(128))
    schema_version: Mapped[int] = mapped_column(Integer, default=1)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    request_id: Mapped[str | None] = mapped_column(String(128))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    available_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # The relay's only question: which aggregates have something pending, oldest first.
        Index(
            "ix_outbox_pending",
            "aggregate_type",
            "aggregate_id",
            "seq",
            postgresql_where=text("published_at IS NULL"),
        ),
    )


class Retry(Base):
    """An event one consumer group failed (or that waits behind one it failed), parked for that
    group alone so the others go on; see migration ``events_0003``."""

    __tablename__ = "retries"

    group_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey(OutboxEvent.id, ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger)
    aggregate_type: Mapped[str] = mapped_column(String(64))
    aggregate_id: Mapped[str] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    available_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_retries_queue", "group_name", "aggregate_type", "aggregate_id", "seq"),)


COMPONENT = Component(name="events", metadata=Base.metadata, migrations=Path(__file__).parent / "migrations")
