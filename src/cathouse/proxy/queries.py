"""What other services may read of the proxy's audit log: read-only, as plain values."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Date, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.contracts.reads import AuditReader, DayCalls
from cathouse.platform.registry import Registry
from cathouse.proxy.models import AuditLog


class Audit:
    async def calls_per_day(
        self, session: AsyncSession, cat_id: uuid.UUID, days: int, *, today: date | None = None
    ) -> list[DayCalls]:
        last = today or datetime.now(UTC).date()
        first = last - timedelta(days=days - 1)
        day = cast(func.timezone("UTC", AuditLog.at), Date)
        statement = (
            select(day, func.count(), func.count().filter(AuditLog.decision == "allowed"))
            .where(
                AuditLog.at >= datetime.combine(first, time.min, UTC),
                AuditLog.at < datetime.combine(last + timedelta(days=1), time.min, UTC),
                AuditLog.cat_id == cat_id,
            )
            .group_by(day)
        )
        counted = {row[0]: (int(row[1]), int(row[2])) for row in await session.execute(statement)}
        return [DayCalls(d, *counted.get(d, (0, 0))) for d in (first + timedelta(days=n) for n in range(days))]


def register(registry: Registry) -> None:
    audit: AuditReader = Audit()
    registry.provide(AuditReader, audit)
