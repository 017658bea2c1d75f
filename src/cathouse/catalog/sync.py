"""Manifest-driven sync: make the catalog say what a directory of cat manifests says.

Each cat is synced in a savepoint of its own, so one broken folder never stops the others,
and a broken manifest leaves its cat as the last good sync made it, with the problems
recorded where its publisher sees them. An unchanged folder (same content hash) is not
touched. A folder that disappears delists its cat and marks it orphaned: never deleted,
since installations may pin its versions.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.catalog.assets.images import ImageKind, ProcessedImage
from cathouse.catalog.assets.service import AssetService
from cathouse.catalog.assets.storage import AssetStorage
from cathouse.catalog.errors import SlugTaken
from cathouse.catalog.manifests import LoadedCat, Manifest, ManifestProblem, load_directory
from cathouse.catalog.models import AssetKind, Cat, CatSource, CatStatus, CatVersion
from cathouse.catalog.repository import CatRepository
from cathouse.catalog.schemas import VersionSpec
from cathouse.catalog.service import CatService
from cathouse.contracts.events import catalog as events
from cathouse.contracts.reads import AccountReader
from cathouse.platform.errors import CatHouseError
from cathouse.platform.settings import Settings

Result = Literal["created", "updated", "unchanged", "failed", "orphaned"]
ORPHANED_REASON = "Its manifest folder is gone from the synced directory."


@dataclass
class SyncOutcome:
    folder: str
    slug: str | None
    result: Result
    problems: list[ManifestProblem] = field(default_factory=list)


class SyncFailed(Exception):
    def __init__(self, problems: list[ManifestProblem]) -> None:
        super().__init__(problems[0].message)
        self.problems = problems


class CatalogSync:
    def __init__(
        self, session: AsyncSession, settings: Settings, storage: AssetStorage, accounts: AccountReader
    ) -> None:
        self.session = session
        self.accounts = accounts
        self.cats = CatService(session, settings)
        self.assets = AssetService(session, storage, settings)
        self.repository = CatRepository(session)

    async def run(
        self, root: Path, *, by: uuid.UUID | None = None, progress: Callable[[SyncOutcome], None] | None = None
    ) -> list[SyncOutcome]:
        loaded = await asyncio.to_thread(load_directory, root)  # parsing YAML is CPU work
        managed = await self.repository.by_manifest_path()
        by_slug = {cat.slug: cat for cat in managed.values()}
        outcomes: list[SyncOutcome] = []
        for folder in loaded:
            slug = folder.manifest.slug if folder.manifest else None
            existing = managed.pop(folder.folder, None) or (by_slug.get(slug) if slug else None)
            if existing is not None:
                managed.pop(existing.manifest_path or "", None)
            outcome = await self._one(folder, existing)
            outcomes.append(outcome)
            if progress:
                progress(outcome)
        for cat in managed.values():
            outcome = await self._orphan(cat, by)
            outcomes.append(outcome)
            if progress:
                progress(outcome)
        return outcomes

    async def _one(self, folder: LoadedCat, existing: Cat | None) -> SyncOutcome:
        slug = folder.manifest.slug if folder.manifest else None
        unchanged = existing is not None and folder.ok and existing.manifest_hash == folder.content_hash
        if existing is not None and unchanged and existing.orphaned_at is None:
            if existing.sync_error:  # an edit that broke it was reverted
                existing.sync_error = None
                await self.session.flush()
            return SyncOutcome(folder.folder, slug, "unchanged")
        problems = list(folder.problems)
        if folder.manifest is None or problems:
            return await self._refused(folder, existing, problems)
        existing_id = existing.id if existing is not None else None
        try:
            async with self.session.begin_nested():
                if existing is None:
                    await self._create(folder, folder.manifest)
                    return SyncOutcome(folder.folder, slug, "created")
                await self._update(folder, folder.manifest, existing)
                return SyncOutcome(folder.folder, slug, "updated")
        except SyncFailed as failure:
            problems = failure.problems
        except CatHouseError as error:
            problems = [_problem(folder, error)]
        # The savepoint is gone; whatever it changed on ``existing`` must be read again.
        fresh = await self.repository.by_id(existing_id) if existing_id is not None else None
        if fresh is not None:
            await self.session.refresh(fresh)
        return await self._refused(folder, fresh, problems)

    async def _refused(self, folder: LoadedCat, cat: Cat | None, problems: list[ManifestProblem]) -> SyncOutcome:
        if cat is not None:
            recorded = [asdict(p) for p in problems]
            if cat.sync_error != recorded:
                cat.sync_error = recorded
                self.cats.event(events.CatSyncFailed(cat_id=cat.id, slug=cat.slug, problems=len(problems)))
            await self.session.flush()
        slug = folder.manifest.slug if folder.manifest else None
        return SyncOutcome(folder.folder, slug, "failed", problems)

    async def _publisher(self, folder: LoadedCat, manifest: Manifest) -> uuid.UUID | None:
        if manifest.publisher is None:
            return None
        found = await self.accounts.active_developer_by_email(self.session, str(manifest.publisher))
        if found is None:
            message = "no active developer account has this email"
            raise SyncFailed([ManifestProblem(folder.file, "publisher", message)])
        return found

    async def _create(self, folder: LoadedCat, manifest: Manifest) -> None:
        publisher = await self._publisher(folder, manifest)
        cat = await self.cats.create(
            publisher, manifest, loc="", source=CatSource.MANIFEST, manifest_path=folder.folder
        )
        for index, spec in enumerate(manifest.versions):
            await self.cats.new_version(cat, spec, loc=f"versions.{index}")
        await self._images(folder, manifest, cat)
        await self.cats.go_live(cat)
        cat.manifest_hash, cat.sync_error = folder.content_hash, None
        await self.session.flush()

    async def _update(self, folder: LoadedCat, manifest: Manifest, cat: Cat) -> None:
        cat.publisher_id = await self._publisher(folder, manifest)
        cat.manifest_path = folder.folder
        fields = manifest.model_dump(mode="json", exclude={"slug", "publisher", "icon", "screenshots", "versions"})
        await self.cats.apply(cat, fields, loc="")
        known = {v.version: v for v in await self.cats.versions.of_cat(cat.id)}
        added: list[CatVersion] = []
        for index, spec in enumerate(manifest.versions):
            stored = known.get(spec.version)
            if stored is None:
                added.append(await self.cats.new_version(cat, spec, loc=f"versions.{index}"))
            elif not _same(stored, spec):
                message = f"version {spec.version} is published and cannot change; add a new version"
                raise SyncFailed([ManifestProblem(folder.file, f"versions.{index}", message)])
        await self.cats.publish_versions(cat, added)
        await self._images(folder, manifest, cat)
        if cat.orphaned_at is not None:
            cat.orphaned_at = None
            await self.cats.go_live(cat)  # its folder is back: so is the cat
        cat.manifest_hash, cat.sync_error = folder.content_hash, None
        await self.session.flush()

    async def _images(self, folder: LoadedCat, manifest: Manifest, cat: Cat) -> None:
        wanted: list[tuple[str, str, ImageKind]] = [("icon", manifest.icon, AssetKind.ICON)] if manifest.icon else []
        wanted += [(f"screenshots.{i}", path, AssetKind.SCREENSHOT) for i, path in enumerate(manifest.screenshots)]
        images: list[tuple[ProcessedImage, ImageKind]] = []
        for loc, path, kind in wanted:
            try:
                images.append((await self.assets.process(folder.assets[path], kind), kind))
            except CatHouseError as error:
                raise SyncFailed([ManifestProblem(folder.file, loc, error.detail)]) from None
        await self.assets.replace_all(cat, images)

    async def _orphan(self, cat: Cat, by: uuid.UUID | None) -> SyncOutcome:
        if cat.orphaned_at is None:
            cat.orphaned_at = datetime.now(UTC)
            if cat.status in (CatStatus.PUBLISHED, CatStatus.SUSPENDED):
                await self.cats.take_down(cat, CatStatus.DELISTED, ORPHANED_REASON, by=by, orphaned=True)
            await self.session.flush()
        return SyncOutcome(cat.manifest_path or "", cat.slug, "orphaned")


def _same(stored: CatVersion, spec: VersionSpec) -> bool:
    wanted: dict[str, Any] = spec.model_dump(mode="json", exclude={"version"})
    return all(getattr(stored, key) == value for key, value in wanted.items())


def _problem(folder: LoadedCat, error: CatHouseError) -> ManifestProblem:
    fallback = "slug" if isinstance(error, SlugTaken) else ""
    errors = error.extra.get("errors") or [{"loc": fallback, "message": error.detail}]
    return ManifestProblem(folder.file, str(errors[0]["loc"]), str(errors[0]["message"]))
