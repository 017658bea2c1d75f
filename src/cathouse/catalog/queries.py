"""What other services may read of the catalog: read-only, as plain values, never ORM rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.catalog.models import Cat, CatVersion
from cathouse.catalog.schemas import secret_fields
from cathouse.catalog.webhook_secrets import WebhookSecrets


@dataclass(frozen=True)
class CatInfo:
    id: uuid.UUID
    slug: str
    name: str
    status: str
    publisher_id: uuid.UUID | None
    current_version_id: uuid.UUID | None


@dataclass(frozen=True)
class VersionInfo:
    """One published version: everything installations and the proxy act on."""

    id: uuid.UUID
    cat_id: uuid.UUID
    version: str
    base_url: str
    credentials: dict[str, Any]
    permissions: list[dict[str, Any]]
    endpoints: list[dict[str, Any]]
    settings_schema: dict[str, Any]
    webhook_url: str | None
    rate_limit_per_minute: int

    @property
    def secret_fields(self) -> list[str]:
        return secret_fields(self.settings_schema)

    @property
    def required_permissions(self) -> set[str]:
        return {p["name"] for p in self.permissions if p.get("required", True)}

    @property
    def permission_names(self) -> set[str]:
        return {p["name"] for p in self.permissions}


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


async def cat_by_slug(session: AsyncSession, slug: str) -> CatInfo | None:
    row = (await session.scalars(select(Cat).where(Cat.slug == slug))).one_or_none()
    return _cat(row) if row else None


async def cats_by_id(session: AsyncSession, cat_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, CatInfo]:
    ids = set(cat_ids)
    if not ids:
        return {}
    rows = await session.scalars(select(Cat).where(Cat.id.in_(ids)))
    return {row.id: _cat(row) for row in rows}


async def published_version(session: AsyncSession, cat_id: uuid.UUID, version: str) -> VersionInfo | None:
    statement = select(CatVersion).where(
        CatVersion.cat_id == cat_id, CatVersion.version == version, CatVersion.status == "published"
    )
    row = (await session.scalars(statement)).one_or_none()
    return _version(row) if row else None


async def version_by_id(session: AsyncSession, version_id: uuid.UUID) -> VersionInfo | None:
    row = await session.get(CatVersion, version_id)
    return _version(row) if row else None


async def versions_by_id(session: AsyncSession, version_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, VersionInfo]:
    ids = set(version_ids)
    if not ids:
        return {}
    rows = await session.scalars(select(CatVersion).where(CatVersion.id.in_(ids)))
    return {row.id: _version(row) for row in rows}


async def webhook_signing_secrets(session: AsyncSession, cat_id: uuid.UUID, master_key: str) -> list[str]:
    """The secrets a provisioning webhook to this cat is signed with now (two during a rotation)."""
    return [secret for _, secret in await WebhookSecrets(session, master_key).live(cat_id)]
