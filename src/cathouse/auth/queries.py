"""What other services may read of the auth schema: read-only, and nothing secret."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.auth.models import User, UserStatus
from cathouse.contracts.reads import AccountReader
from cathouse.platform.registry import Registry


class Accounts:
    async def display_names(self, session: AsyncSession, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        ids = set(user_ids)
        if not ids:
            return {}
        rows = await session.execute(select(User.id, User.display_name).where(User.id.in_(ids)))
        return {row.id: row.display_name for row in rows}

    async def active_developer_by_email(self, session: AsyncSession, email: str) -> uuid.UUID | None:
        statement = select(User.id).where(
            User.email == email.strip().lower(),
            User.status == UserStatus.ACTIVE,
            User.roles.overlap(["developer", "admin"]),
        )
        return await session.scalar(statement)


def register(registry: Registry) -> None:
    accounts: AccountReader = Accounts()
    registry.provide(AccountReader, accounts)
