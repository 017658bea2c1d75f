"""A cat's icon and screenshots: checked, re-encoded, stored by content, recorded in the catalog."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.catalog.assets.images import ImageKind, ProcessedImage, process_image
from cathouse.catalog.assets.storage import AssetStorage
from cathouse.catalog.errors import AssetNotFound
from cathouse.catalog.models import Asset, AssetKind, Cat, CatStatus
from cathouse.catalog.repository import AssetRepository
from cathouse.catalog.service import CatService
from cathouse.contracts.events import catalog as events
from cathouse.platform.errors import Conflict, NotFound
from cathouse.platform.settings import Settings

MAX_SCREENSHOTS = 8


class AssetService:
    """Bytes are written to storage before the row that names them commits; a row never names
    a missing object. An object no row names any more is left in place (keys are content
    addressed, so it costs disk, never correctness)."""

    def __init__(self, session: AsyncSession, storage: AssetStorage, settings: Settings) -> None:
        self.session = session
        self.storage = storage
        self.settings = settings.catalog
        self.assets = AssetRepository(session)
        self.cats = CatService(session, settings)

    async def process(self, data: bytes, kind: ImageKind) -> ProcessedImage:
        image = await asyncio.to_thread(
            process_image,
            data,
            kind=kind,
            max_bytes=self.settings.max_image_bytes,
            max_pixels=self.settings.max_image_pixels,
        )
        await self.storage.put(image.key, image.data, image.content_type)
        return image

    async def set_icon(self, cat: Cat, data: bytes) -> Asset:
        image = await self.process(data, AssetKind.ICON)
        for old in await self.assets.of_cat(cat.id):
            if old.kind == AssetKind.ICON:
                await self.assets.delete(old)
        await self.session.flush()
        asset = self._row(cat, image, AssetKind.ICON, 0)
        await self._changed(cat, "icon")
        return asset

    async def add_screenshot(self, cat: Cat, data: bytes) -> Asset:
        shots = [a for a in await self.assets.of_cat(cat.id) if a.kind == AssetKind.SCREENSHOT]
        if len(shots) >= MAX_SCREENSHOTS:
            raise Conflict(f"A cat has at most {MAX_SCREENSHOTS} screenshots; delete one first.")
        image = await self.process(data, AssetKind.SCREENSHOT)
        asset = self._row(cat, image, AssetKind.SCREENSHOT, max((a.position for a in shots), default=-1) + 1)
        await self._changed(cat, "screenshots")
        return asset

    async def remove(self, cat: Cat, kind: ImageKind, asset_id: uuid.UUID | None = None) -> None:
        found = [a for a in await self.assets.of_cat(cat.id) if a.kind == kind and asset_id in (None, a.id)]
        if not found:
            raise NotFound(f"The cat has no such {kind}.")
        for asset in found:
            await self.assets.delete(asset)
        await self._changed(cat, "icon" if kind == AssetKind.ICON else "screenshots")

    async def replace_all(self, cat: Cat, images: list[tuple[ProcessedImage, ImageKind]]) -> None:
        """What a manifest sync does: the cat's images become exactly these (processed and stored)."""
        for old in await self.assets.of_cat(cat.id):
            await self.assets.delete(old)
        await self.session.flush()
        for position, (image, kind) in enumerate(images):
            self._row(cat, image, kind, 0 if kind == AssetKind.ICON else position)
        await self.session.flush()

    def _row(self, cat: Cat, image: ProcessedImage, kind: AssetKind, position: int) -> Asset:
        asset = Asset(
            id=uuid.uuid4(),
            cat_id=cat.id,
            kind=kind,
            position=position,
            content_type=image.content_type,
            width=image.width,
            height=image.height,
            size=len(image.data),
            sha256=image.sha256,
            storage_key=image.key,
        )
        self.assets.add(asset)
        return asset

    async def _changed(self, cat: Cat, field: str) -> None:
        await self.session.flush()
        if cat.status == CatStatus.PUBLISHED:
            self.cats.event(events.CatUpdated(cat_id=cat.id, slug=cat.slug, fields=[field]))

    async def read(self, key: str, visible: bool) -> tuple[Asset, bytes]:
        asset = await self.assets.by_key(key)
        if asset is None or not visible:
            raise AssetNotFound()
        data = await self.storage.get(key)
        if data is None:
            raise AssetNotFound()
        return asset, data
