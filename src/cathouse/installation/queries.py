"""What other services may read of the installation schema: read-only, never a secret."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.installation.models import Installation


@dataclass(frozen=True)
class InstallCounts:
    total: int
    active: int


async def install_counts(session: AsyncSession, cat_id: uuid.UUID) -> InstallCounts:
    """Installs of a cat that were provisioned (ever, and running now)."""
    row = (
        await session.execute(
            select(
                func.count().filter(Installation.activated_at.is_not(None)),
                func.count().filter(Installation.status == "active"),
            ).where(Installation.cat_id == cat_id)
        )
    ).one()
    return InstallCounts(total=int(row[0]), active=int(row[1]))


async def has_installed(session: AsyncSession, user_id: uuid.UUID, cat_id: uuid.UUID) -> bool:
    """Whether the user ever had an installation of the cat provisioned (a verified reviewer)."""
    statement = select(Installation.id).where(
        Installation.user_id == user_id, Installation.cat_id == cat_id, Installation.activated_at.is_not(None)
    )
    return (await session.scalar(statement.limit(1))) is not None
