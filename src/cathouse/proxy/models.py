"""The proxy schema: the tamper-evident audit log and the head of its hash chain.

No foreign keys: a record must outlive the user, installation or cat it names, and the log is
written on every call, where each constraint check costs.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from sqlalchemy import BigInteger, DateTime, Double, Index, Integer, LargeBinary, SmallInteger, String, Text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cathouse.platform.db import schema_metadata

# What became of a proxied call, as its audit record says.
Decision = Literal[
    "allowed",
    "unauthenticated",
    "not_found",
    "inactive",
    "not_connected",
    "provider_unavailable",
    "no_permission",
    "rate_limited",
    "circuit_open",
    "upstream_error",
    "upstream_timeout",
    "too_large",
    "blocked_address",
    "limiter_unavailable",
    "bad_request",
    "method_not_allowed",
    "client_closed",
    "error",
]


class Base(DeclarativeBase):
    metadata = schema_metadata("proxy")


class AuditLog(Base):
    """One call through the proxy, allowed or refused; ``hash`` covers the record and ``prev_hash``."""

    __tablename__ = "audit_log"
    # What the audit endpoint filters by, each newest first by seq.
    __table_args__ = (
        Index("ix_audit_log_owner_id", "owner_id", "seq"),
        Index("ix_audit_log_installation_id", "installation_id", "seq"),
        Index("ix_audit_log_at", "at"),
    )

    # The chain position, assigned by the writer under the head's lock: never a sequence, whose
    # values would be handed out before the order of the chain is known.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # The installation's owner, copied here so owners read their audit without a cross-schema join.
    owner_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    installation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    cat_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    # A closed set for the type checker, a plain str at run time (not an enum):
    # the writer's fast path takes exact str only, and no CHECK constraint holds the column.
    decision: Mapped[Decision] = mapped_column(String(32))
    status: Mapped[int] = mapped_column(Integer)
    upstream_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Double)
    bytes_in: Mapped[int] = mapped_column(BigInteger)
    bytes_out: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditChain(Base):
    """The single row (id 1) every writer locks: the chain's newest link and where pruning cut it."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    # The newest pruned record: verification starts after it, from its hash.
    pruned_through_seq: Mapped[int] = mapped_column(BigInteger)
    pruned_through_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
