"""Every query of the installation schema."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.installation.models import (
    Credential,
    DataKey,
    GrantedPermission,
    Installation,
    InstallationStatus,
    OAuthToken,
)


class InstallationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: object) -> None:
        self.session.add(row)

    async def get(self, installation_id: uuid.UUID, *, for_update: bool = False) -> Installation | None:
        statement = select(Installation).where(Installation.id == installation_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def name_taken(self, user_id: uuid.UUID, name: str, *, other_than: uuid.UUID | None = None) -> bool:
        statement = select(Installation.id).where(
            Installation.user_id == user_id,
            func.lower(Installation.name) == name.lower(),
            Installation.status != InstallationStatus.UNINSTALLED,
        )
        if other_than is not None:
            statement = statement.where(Installation.id != other_than)
        return (await self.session.scalar(statement.limit(1))) is not None

    async def of_user(
        self, user_id: uuid.UUID | None, *, after: tuple[datetime, uuid.UUID] | None, limit: int, status: str | None
    ) -> Sequence[Installation]:
        statement = select(Installation).order_by(Installation.created_at.desc(), Installation.id.desc()).limit(limit)
        if user_id is not None:
            statement = statement.where(Installation.user_id == user_id)
        if status is not None:
            statement = statement.where(Installation.status == status)
        if after is not None:
            statement = statement.where(tuple_(Installation.created_at, Installation.id) < tuple_(*after))
        return (await self.session.scalars(statement)).all()

    async def grants(self, installation_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[GrantedPermission]]:
        found: dict[uuid.UUID, list[GrantedPermission]] = {i: [] for i in installation_ids}
        if installation_ids:
            statement = (
                select(GrantedPermission)
                .where(GrantedPermission.installation_id.in_(installation_ids))
                .order_by(GrantedPermission.permission)
            )
            for grant in await self.session.scalars(statement):
                found[grant.installation_id].append(grant)
        return found

    async def revoke(self, installation_id: uuid.UUID, permissions: set[str]) -> None:
        await self.session.execute(
            delete(GrantedPermission).where(
                GrantedPermission.installation_id == installation_id, GrantedPermission.permission.in_(permissions)
            )
        )

    async def credentials(self, installation_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Credential]]:
        found: dict[uuid.UUID, list[Credential]] = {i: [] for i in installation_ids}
        if installation_ids:
            statement = (
                select(Credential).where(Credential.installation_id.in_(installation_ids)).order_by(Credential.field)
            )
            for credential in await self.session.scalars(statement):
                found[credential.installation_id].append(credential)
        return found

    async def delete_credentials(self, installation_id: uuid.UUID) -> None:
        await self.session.execute(delete(Credential).where(Credential.installation_id == installation_id))

    async def delete_tokens(self, installation_id: uuid.UUID) -> None:
        await self.session.execute(delete(OAuthToken).where(OAuthToken.installation_id == installation_id))

    async def data_key(self, installation_id: uuid.UUID, *, for_update: bool = False) -> DataKey | None:
        statement = select(DataKey).where(DataKey.installation_id == installation_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()
