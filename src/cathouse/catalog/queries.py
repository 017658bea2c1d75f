"""What other services may read of the catalog: read-only, as plain values, never ORM rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.catalog.models import Cat, CatVersion, VersionStatus
from cathouse.catalog.oauth_clients import OAuthClients
from cathouse.catalog.webhook_secrets import WebhookSecrets
from cathouse.contracts.reads import CatInfo, CatReader, OAuthClientInfo, VersionInfo
from cathouse.platform.registry import Registry


def _cat(row: Cat) -> CatInfo:
    return CatInfo(row.id, row.slug, row.name, row.status, row.publisher_id, row.current_version_id)


def _version(row: CatVersion) -> VersionInfo:
    return VersionInfo(
        id=row.id,
        cat_id=row.cat_id,
        version=row.version,
        base_url=row.base_url,
        credentials=row.credentials,
        permissions=row.permissions,
        endpoints=row.endpoints,
        settings_schema=row.settings_schema,
        webhook_url=row.webhook_url,
        rate_limit_per_minute=row.rate_limit_per_minute,
    )


class Cats:
    async def cat_by_slug(self, session: AsyncSession, slug: str) -> CatInfo | None:
        row = (await session.scalars(select(Cat).where(Cat.slug == slug))).one_or_none()
        return _cat(row) if row else None

    async def cats_by_id(self, session: AsyncSession, cat_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, CatInfo]:
        ids = set(cat_ids)
        if not ids:
            return {}
        rows = await session.scalars(select(Cat).where(Cat.id.in_(ids)))
        return {row.id: _cat(row) for row in rows}

    async def published_version(self, session: AsyncSession, cat_id: uuid.UUID, version: str) -> VersionInfo | None:
        statement = select(CatVersion).where(
            CatVersion.cat_id == cat_id, CatVersion.version == version, CatVersion.status == VersionStatus.PUBLISHED
        )
        row = (await session.scalars(statement)).one_or_none()
        return _version(row) if row else None

    async def version_by_id(self, session: AsyncSession, version_id: uuid.UUID) -> VersionInfo | None:
        row = await session.get(CatVersion, version_id)
        return _version(row) if row else None

    async def versions_by_id(
        self, session: AsyncSession, version_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, VersionInfo]:
        ids = set(version_ids)
        if not ids:
            return {}
        rows = await session.scalars(select(CatVersion).where(CatVersion.id.in_(ids)))
        return {row.id: _version(row) for row in rows}

    async def webhook_signing_secrets(self, session: AsyncSession, cat_id: uuid.UUID, master_key: str) -> list[str]:
        return [secret for _, secret in await WebhookSecrets(session, master_key).live(cat_id)]

    async def oauth_client(self, session: AsyncSession, cat_id: uuid.UUID, master_key: str) -> OAuthClientInfo | None:
        found = await OAuthClients(session, master_key).reveal(cat_id)
        return None if found is None else OAuthClientInfo(found.client_id, found.client_secret)


def register(registry: Registry) -> None:
    cats: CatReader = Cats()
    registry.provide(CatReader, cats)
