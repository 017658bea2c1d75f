"""Shape installations for the API: their cat, version, grants and secret fields (never values)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.contracts.reads import CatReader
from cathouse.installation.models import Installation
from cathouse.installation.repository import InstallationRepository
from cathouse.installation.schemas import Grant, InstallationCatRef, InstallationOut, SecretField


class InstallationViews:
    def __init__(self, session: AsyncSession, cats: CatReader) -> None:
        self.session = session
        self.cats = cats

    async def many(self, rows: Sequence[Installation]) -> list[InstallationOut]:
        ids = [r.id for r in rows]
        repository = InstallationRepository(self.session)
        grants = await repository.grants(ids)
        secrets = await repository.credentials(ids)
        cats = await self.cats.cats_by_id(self.session, {r.cat_id for r in rows})
        versions = await self.cats.versions_by_id(
            self.session, {r.version_id for r in rows} | {r.target_version_id for r in rows if r.target_version_id}
        )
        return [
            InstallationOut(
                id=r.id,
                name=r.name,
                user_id=r.user_id,
                cat=InstallationCatRef(id=r.cat_id, slug=cats[r.cat_id].slug, name=cats[r.cat_id].name),
                version=versions[r.version_id].version,
                target_version=versions[r.target_version_id].version if r.target_version_id else None,
                status=r.status,
                status_reason=r.status_reason,
                suspended_by_moderator=r.suspended_by_moderator,
                settings=r.settings,
                permissions=[
                    Grant(permission=g.permission, granted_at=g.granted_at, granted_by=g.granted_by)
                    for g in grants[r.id]
                ],
                secrets=[SecretField(field=c.field, fingerprint=c.fingerprint, set_at=c.set_at) for c in secrets[r.id]],
                created_at=r.created_at,
                updated_at=r.updated_at,
                activated_at=r.activated_at,
            )
            for r in rows
        ]

    async def one(self, row: Installation) -> InstallationOut:
        await self.session.refresh(row)  # server defaults and timestamps
        return (await self.many([row]))[0]
