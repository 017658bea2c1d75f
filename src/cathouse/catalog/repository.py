"""Every query of cats, their versions, categories and assets (reviews: ``reviews/repository.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.catalog.models import (
    Asset,
    AssetKind,
    Cat,
    Category,
    CatSource,
    CatStatus,
    CatVersion,
    SearchFacetCount,
    VersionStatus,
)
from cathouse.platform.security import Principal


class CatRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, cat: Cat) -> None:
        self.session.add(cat)

    async def by_slug(self, slug: str, *, for_update: bool = False) -> Cat | None:
        statement = select(Cat).where(Cat.slug == slug)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def by_id(self, cat_id: uuid.UUID, *, for_update: bool = False) -> Cat | None:
        statement = select(Cat).where(Cat.id == cat_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.scalars(statement)).one_or_none()

    async def slug_exists(self, slug: str) -> bool:
        return (await self.session.scalar(select(Cat.id).where(Cat.slug == slug))) is not None

    async def of_publisher(self, principal: Principal, *, limit: int, after: str | None) -> Sequence[Cat]:
        statement = select(Cat).where(Cat.publisher_id == principal.user_id).order_by(Cat.slug).limit(limit)
        if after is not None:
            statement = statement.where(Cat.slug > after)
        return (await self.session.scalars(statement)).all()

    async def in_status(self, status: CatStatus, *, limit: int, after: str | None) -> Sequence[Cat]:
        statement = select(Cat).where(Cat.status == status).order_by(Cat.slug).limit(limit)
        if after is not None:
            statement = statement.where(Cat.slug > after)
        return (await self.session.scalars(statement)).all()

    async def by_manifest_path(self) -> dict[str, Cat]:
        rows = await self.session.scalars(select(Cat).where(Cat.source == CatSource.MANIFEST).with_for_update())
        return {cat.manifest_path: cat for cat in rows if cat.manifest_path}

    async def delete(self, cat: Cat) -> None:
        await self.session.delete(cat)


class VersionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, version: CatVersion) -> None:
        self.session.add(version)

    async def of_cat(self, cat_id: uuid.UUID, *, published_only: bool = False) -> Sequence[CatVersion]:
        statement = select(CatVersion).where(CatVersion.cat_id == cat_id)
        if published_only:
            statement = statement.where(CatVersion.status == VersionStatus.PUBLISHED)
        return (await self.session.scalars(statement)).all()

    async def get(self, cat_id: uuid.UUID, version: str) -> CatVersion | None:
        statement = select(CatVersion).where(CatVersion.cat_id == cat_id, CatVersion.version == version)
        return (await self.session.scalars(statement)).one_or_none()

    async def by_id(self, version_id: uuid.UUID) -> CatVersion | None:
        return await self.session.get(CatVersion, version_id)

    async def labels(self, version_ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
        ids = [i for i in version_ids if i is not None]
        if not ids:
            return {}
        rows = await self.session.execute(select(CatVersion.id, CatVersion.version).where(CatVersion.id.in_(ids)))
        return {row.id: row.version for row in rows}

    async def delete(self, version: CatVersion) -> None:
        await self.session.delete(version)


class CategoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def exists(self, slug: str) -> bool:
        return (await self.session.scalar(select(Category.slug).where(Category.slug == slug))) is not None

    async def with_counts(self) -> Sequence[tuple[Category, int]]:
        """Each category with its published cats, as the kept facet counts have them: counting
        the cats instead read every one of them (150 ms at 100,000 cats, on every browse page)."""
        kept = and_(SearchFacetCount.category == Category.slug, SearchFacetCount.tag == "")
        statement = (
            select(Category, func.coalesce(SearchFacetCount.n, 0))
            .outerjoin(SearchFacetCount, kept)
            .order_by(Category.position)
        )
        return [(row[0], int(row[1])) for row in await self.session.execute(statement)]


class AssetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, asset: Asset) -> None:
        self.session.add(asset)

    async def of_cat(self, cat_id: uuid.UUID) -> Sequence[Asset]:
        statement = select(Asset).where(Asset.cat_id == cat_id).order_by(Asset.kind, Asset.position)
        return (await self.session.scalars(statement)).all()

    async def icons(self, cat_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Asset]:
        ids = list(cat_ids)
        if not ids:
            return {}
        rows = await self.session.scalars(select(Asset).where(Asset.cat_id.in_(ids), Asset.kind == AssetKind.ICON))
        return {asset.cat_id: asset for asset in rows}

    async def by_id(self, cat_id: uuid.UUID, asset_id: uuid.UUID) -> Asset | None:
        statement = select(Asset).where(Asset.cat_id == cat_id, Asset.id == asset_id)
        return (await self.session.scalars(statement)).one_or_none()

    async def by_key(self, key: str) -> Asset | None:
        return await self.session.scalar(select(Asset).where(Asset.storage_key == key).limit(1))

    async def delete(self, asset: Asset) -> None:
        await self.session.delete(asset)

    async def visible_key(self, key: str, principal: Principal | None) -> bool:
        """Whether someone may fetch these bytes: a published cat uses them, or one the caller owns."""
        statement = select(Asset.id).join(Cat, Cat.id == Asset.cat_id).where(Asset.storage_key == key)
        if principal is None:
            statement = statement.where(Cat.status == CatStatus.PUBLISHED)
        elif not principal.is_admin:
            statement = statement.where(or_(Cat.status == CatStatus.PUBLISHED, Cat.publisher_id == principal.user_id))
        return (await self.session.scalar(statement.limit(1))) is not None
