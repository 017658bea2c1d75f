"""Shape cats for the API: who published them, their icon, their current version."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TypedDict

from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.catalog.models import Asset, AssetKind, Cat, CatStatus, CatVersion, VersionStatus
from cathouse.catalog.repository import AssetRepository, VersionRepository
from cathouse.catalog.schemas import (
    AssetOut,
    CatDetail,
    CatSummary,
    Publisher,
    Rating,
    SyncProblem,
    VersionBrief,
    VersionOut,
)
from cathouse.catalog.service import can_inspect, newest
from cathouse.contracts.reads import AccountReader, secret_fields
from cathouse.platform.security import Principal

ASSET_PATH = "/api/v1/cats/assets/"
PLATFORM_PUBLISHER = "Cat House"


def asset_url(asset: Asset) -> str:
    return ASSET_PATH + asset.storage_key


def asset_out(asset: Asset) -> AssetOut:
    return AssetOut(
        id=asset.id,
        kind=asset.kind,
        url=asset_url(asset),
        content_type=asset.content_type,
        width=asset.width,
        height=asset.height,
        size=asset.size,
    )


def rating(cat: Cat) -> Rating:
    average = round(cat.rating_average, 2) if cat.rating_count else None
    return Rating(count=cat.rating_count, average=average, histogram=cat.histogram)


def version_out(cat: Cat, version: CatVersion, principal: Principal | None) -> VersionOut:
    out = VersionOut.model_validate(
        {
            **{c: getattr(version, c) for c in VersionOut.model_fields if hasattr(version, c)},
            "secret_fields": secret_fields(version.settings_schema),
            "webhook_url": None,
        }
    )
    if can_inspect(cat, principal):
        out.webhook_url = version.webhook_url
    return out


class CatViews:
    def __init__(self, session: AsyncSession, accounts: AccountReader) -> None:
        self.session = session
        self.accounts = accounts
        self.assets = AssetRepository(session)
        self.versions = VersionRepository(session)

    async def _publishers(self, cats: Sequence[Cat]) -> dict[uuid.UUID, str]:
        return await self.accounts.display_names(self.session, (c.publisher_id for c in cats if c.publisher_id))

    async def summaries(self, cats: Sequence[Cat]) -> list[CatSummary]:
        names = await self._publishers(cats)
        icons = await self.assets.icons(c.id for c in cats)
        labels = await self.versions.labels(c.current_version_id for c in cats)
        return [
            CatSummary(
                **_summary_fields(
                    c, names, icons.get(c.id), labels.get(c.current_version_id) if c.current_version_id else None
                )
            )
            for c in cats
        ]

    async def detail(self, cat: Cat, principal: Principal | None) -> CatDetail:
        names = await self._publishers([cat])
        assets = await self.assets.of_cat(cat.id)
        icon = next((a for a in assets if a.kind == AssetKind.ICON), None)
        manager = can_inspect(cat, principal)
        versions = [v for v in await self.versions.of_cat(cat.id) if manager or v.status == VersionStatus.PUBLISHED]
        current = next((v for v in versions if v.id == cat.current_version_id), None)
        if current is None and manager:
            current = newest(versions)  # a draft's owner sees what will be published
        return CatDetail(
            **_summary_fields(cat, names, icon, current.version if current else None),
            id=cat.id,
            description=cat.description,
            homepage=cat.homepage,
            support_email=cat.support_email,
            support_url=cat.support_url,
            permissions=cat.permissions,
            active_install_count=cat.active_install_count,
            version=version_out(cat, current, principal) if current else None,
            versions=[
                VersionBrief(version=v.version, status=v.status, published_at=v.published_at)
                for v in sorted(versions, key=lambda v: v.created_at, reverse=True)
            ],
            screenshots=[asset_out(a) for a in assets if a.kind == AssetKind.SCREENSHOT],
            created_at=cat.created_at,
            updated_at=cat.updated_at,
            moderation_reason=cat.moderation_reason if manager else None,
            source=cat.source,
            sync_errors=[SyncProblem(**p) for p in cat.sync_error] if manager and cat.sync_error else None,
            orphaned=cat.orphaned_at is not None,
        )


class _SummaryFields(TypedDict):
    """What a summary and a detail share, typed so that both constructors are checked."""

    slug: str
    name: str
    summary: str
    category: str
    tags: list[str]
    publisher: Publisher
    status: CatStatus
    rating: Rating
    install_count: int
    current_version: str | None
    icon_url: str | None
    published_at: datetime | None


def _summary_fields(cat: Cat, names: dict[uuid.UUID, str], icon: Asset | None, current: str | None) -> _SummaryFields:
    publisher = (
        Publisher(id=cat.publisher_id, display_name=names.get(cat.publisher_id, "Unknown"))
        if cat.publisher_id
        else Publisher(id=None, display_name=PLATFORM_PUBLISHER)
    )
    return {
        "slug": cat.slug,
        "name": cat.name,
        "summary": cat.summary,
        "category": cat.category,
        "tags": cat.tags,
        "publisher": publisher,
        "status": cat.status,
        "rating": rating(cat),
        "install_count": cat.install_count,
        "current_version": current,
        "icon_url": asset_url(icon) if icon else None,
        "published_at": cat.published_at,
    }
