"""Every query of the audit endpoint."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.proxy.models import AuditLog


@dataclass(frozen=True, slots=True)
class AuditFilter:
    # None: every owner's records (admins).
    owner_id: uuid.UUID | None
    installation_id: uuid.UUID | None = None
    cat_id: uuid.UUID | None = None
    decision: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def newest_first(self, where: AuditFilter, *, before_seq: int | None, limit: int) -> Sequence[AuditLog]:
        statement = select(AuditLog).order_by(AuditLog.seq.desc()).limit(limit)
        if where.owner_id is not None:
            statement = statement.where(AuditLog.owner_id == where.owner_id)
        if where.installation_id is not None:
            statement = statement.where(AuditLog.installation_id == where.installation_id)
        if where.cat_id is not None:
            statement = statement.where(AuditLog.cat_id == where.cat_id)
        if where.decision is not None:
            statement = statement.where(AuditLog.decision == where.decision)
        if where.since is not None:
            statement = statement.where(AuditLog.at >= where.since)
        if where.until is not None:
            statement = statement.where(AuditLog.at < where.until)
        if before_seq is not None:
            statement = statement.where(AuditLog.seq < before_seq)
        return (await self.session.scalars(statement)).all()
