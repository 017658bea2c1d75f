"""What other services may read of the auth schema: read-only, and nothing secret."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.auth.models import User


async def display_names(session: AsyncSession, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    ids = set(user_ids)
    if not ids:
        return {}
    rows = await session.execute(select(User.id, User.display_name).where(User.id.in_(ids)))
    return {row.id: row.display_name for row in rows}


async def active_developer_by_email(session: AsyncSession, email: str) -> uuid.UUID | None:
    """The id of an active account with the developer (or admin) role, by its email."""
    statement = select(User.id).where(
        User.email == email.strip().lower(),
        User.status == "active",
        User.roles.overlap(["developer", "admin"]),
    )
    return await session.scalar(statement)
