"""Publishing and moderation: what may happen to a cat, by whom, and what it tells the world."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.catalog.errors import (
    CatNotFound,
    IllegalTransition,
    SlugTaken,
    VersionExists,
    VersionNotDraft,
    VersionNotFound,
)
from cathouse.catalog.models import Cat, CatStatus, CatVersion, VersionStatus
from cathouse.catalog.repository import CategoryRepository, CatRepository, VersionRepository
from cathouse.catalog.schemas import CatFields, CatIn, OAuth2Credentials, VersionSpec, semver_key
from cathouse.catalog.webhook_secrets import WebhookSecrets
from cathouse.contracts.events import catalog as events
from cathouse.platform.baseurl import AllowList, UnsafeURL, check_base_url
from cathouse.platform.errors import Conflict, Unprocessable
from cathouse.platform.outbox import record
from cathouse.platform.security import Principal
from cathouse.platform.settings import Settings

HIDDEN = (CatStatus.SUSPENDED, CatStatus.DELISTED)


def can_see(cat: Cat, principal: Principal | None) -> bool:
    if cat.status == CatStatus.PUBLISHED:
        return True
    return principal is not None and (principal.is_admin or cat.publisher_id == principal.user_id)


def can_manage(cat: Cat, principal: Principal) -> bool:
    """Whether the caller owns the cat: its publisher, or any admin for the platform's own (synced)
    cats. Admins moderate other publishers' cats; they do not change them."""
    if cat.publisher_id is None:
        return principal.is_admin
    return principal.is_developer and cat.publisher_id == principal.user_id


def can_inspect(cat: Cat, principal: Principal | None) -> bool:
    """Whether the caller sees what only the cat's owner sees (drafts, moderation notes): admins
    read everything they are asked to judge."""
    return principal is not None and (principal.is_admin or can_manage(cat, principal))


def newest(versions: list[CatVersion]) -> CatVersion | None:
    """The version installations get by default: the highest release, else the highest pre-release."""
    if not versions:
        return None

    def precedence(v: CatVersion) -> tuple[bool, tuple[int, int, int], str]:
        major, minor, patch, pre = semver_key(v.version)
        return (pre is None, (major, minor, patch), pre or "")

    return max(versions, key=precedence)


class CatService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings.catalog
        # A literal address the proxy would refuse is refused here too; its allow list, for development.
        self.upstreams = AllowList(settings.proxy.allow_hosts)
        self.master_key = settings.master_key_value()
        self.webhook_secrets = WebhookSecrets(session, self.master_key)
        self.cats = CatRepository(session)
        self.versions = VersionRepository(session)
        self.categories = CategoryRepository(session)

    def event(self, event: events.CatEvent) -> None:
        record(self.session, event)

    async def visible(self, slug: str, principal: Principal | None) -> Cat:
        cat = await self.cats.by_slug(slug)
        if cat is None or not can_see(cat, principal):
            raise CatNotFound()
        return cat

    async def managed(self, slug: str, principal: Principal) -> Cat:
        """A cat the caller owns, locked for the change. Anyone else's cat is a 404, an admin's too."""
        cat = await self.cats.by_slug(slug, for_update=True)
        if cat is None or not can_manage(cat, principal):
            raise CatNotFound()
        return cat

    async def moderated(self, slug: str) -> Cat:
        """Any cat, locked for a moderation move (the route admits admins only)."""
        cat = await self.cats.by_slug(slug, for_update=True)
        if cat is None:
            raise CatNotFound()
        return cat

    async def check_fields(self, fields: dict[str, Any], loc: str = "body") -> None:
        category = fields.get("category")
        if category is not None and not await self.categories.exists(category):
            raise Unprocessable(
                _at(loc, "category"), f"'{category}' is not a category; see GET /api/v1/cats/categories"
            )
        for name in ("homepage", "support_url"):
            self.check_scheme(fields.get(name), _at(loc, name))

    def check_scheme(self, url: object, loc: str) -> None:
        if url is not None and str(url).startswith("http:") and not self.settings.allow_http:
            raise Unprocessable(loc, "must be an https URL")

    def check_base_url(self, url: object, loc: str) -> None:
        """What the proxy would refuse on every call, refused once when the version is written."""
        self.check_scheme(url, loc)
        try:
            check_base_url(str(url), self.upstreams)
        except UnsafeURL as exc:
            raise Unprocessable(loc, f"the base URL {exc}") from None

    # Drafts and edits

    async def create(self, publisher_id: uuid.UUID | None, data: CatIn, *, loc: str = "body", **extra: Any) -> Cat:
        """A draft cat; ``publisher_id`` None makes it the platform's own (manifest sync)."""
        fields = _columns(data)
        await self.check_fields(fields, loc)
        if await self.cats.slug_exists(data.slug):
            raise SlugTaken(data.slug)
        cat = Cat(id=uuid.uuid4(), slug=data.slug, publisher_id=publisher_id, **fields, **extra)
        self.cats.add(cat)
        try:
            await self.session.flush()
        except IntegrityError:
            raise SlugTaken(data.slug) from None
        return cat

    async def update(self, principal: Principal, slug: str, changes: dict[str, Any]) -> Cat:
        cat = await self.managed(slug, principal)
        await self.apply(cat, changes)
        return cat

    async def apply(self, cat: Cat, changes: dict[str, Any], loc: str = "body") -> list[str]:
        columns = _columns(changes)
        await self.check_fields(columns, loc)
        changed = sorted(k for k, v in columns.items() if getattr(cat, k) != v)
        for key in changed:
            setattr(cat, key, columns[key])
        if changed:
            cat.updated_at = datetime.now(UTC)
            if cat.status == CatStatus.PUBLISHED:
                self.event(events.CatUpdated(cat_id=cat.id, slug=cat.slug, fields=changed))
        await self.session.flush()
        return changed

    async def delete(self, principal: Principal, slug: str) -> None:
        cat = await self.managed(slug, principal)
        if cat.published_at is not None:
            # Installations and reviews refer to it: a cat once public is delisted, never deleted.
            raise Conflict("A cat that has been published cannot be deleted; an admin can delist it.")
        await self.cats.delete(cat)
        await self.session.flush()

    # Versions

    async def add_version(self, principal: Principal, slug: str, spec: VersionSpec) -> CatVersion:
        cat = await self.managed(slug, principal)
        return await self.new_version(cat, spec)

    async def new_version(self, cat: Cat, spec: VersionSpec, loc: str = "body") -> CatVersion:
        self.check_base_url(spec.base_url, _at(loc, "base_url"))
        if isinstance(spec.credentials, OAuth2Credentials):
            # The platform calls these itself, with secrets: the same rules as the cat's API.
            for name, url in spec.credentials.urls().items():
                if url is not None:
                    self.check_base_url(url, _at(loc, f"credentials.{name}"))
        self.check_scheme(spec.webhook_url, _at(loc, "webhook_url"))
        if await self.versions.get(cat.id, spec.version) is not None:
            raise VersionExists(spec.version)
        major, minor, patch, pre = semver_key(spec.version)
        version = CatVersion(
            id=uuid.uuid4(),
            cat_id=cat.id,
            version=spec.version,
            major=major,
            minor=minor,
            patch=patch,
            prerelease=pre,
            status=VersionStatus.DRAFT,
            **spec.model_dump(mode="json", exclude={"version"}),
        )
        self.versions.add(version)
        await self.session.flush()
        return version

    async def listed_versions(self, cat: Cat, principal: Principal | None) -> list[CatVersion]:
        """Newest first; drafts only for the cat's owner and admins."""
        manager = can_inspect(cat, principal)
        found = [v for v in await self.versions.of_cat(cat.id) if manager or v.status == VersionStatus.PUBLISHED]
        return sorted(found, key=lambda v: v.created_at, reverse=True)

    async def version(self, cat: Cat, version: str, principal: Principal | None) -> CatVersion:
        found = await self.versions.get(cat.id, version)
        if found is None or (found.status != VersionStatus.PUBLISHED and not can_inspect(cat, principal)):
            raise VersionNotFound()
        return found

    async def publish_version(self, principal: Principal, slug: str, version: str) -> CatVersion:
        cat = await self.managed(slug, principal)
        if cat.status != CatStatus.PUBLISHED:
            raise IllegalTransition(
                "given a new version before it is approved (approval publishes its drafts)", cat.status
            )
        found = await self.versions.get(cat.id, version)
        if found is None:
            raise VersionNotFound()
        if found.status != VersionStatus.DRAFT:
            raise VersionNotDraft(version)
        await self.publish_versions(cat, [found])
        return found

    async def delete_version(self, principal: Principal, slug: str, version: str) -> None:
        cat = await self.managed(slug, principal)
        found = await self.versions.get(cat.id, version)
        if found is None:
            raise VersionNotFound()
        if found.status != VersionStatus.DRAFT:
            raise VersionNotDraft(version)
        await self.versions.delete(found)
        await self.session.flush()

    async def publish_versions(self, cat: Cat, drafts: list[CatVersion]) -> None:
        now = datetime.now(UTC)
        for draft in drafts:
            draft.status, draft.published_at = VersionStatus.PUBLISHED, now
        await self.session.flush()  # sessions do not autoflush: the query below must see these
        current = newest(list(await self.versions.of_cat(cat.id, published_only=True)))
        if current is not None:
            cat.current_version_id = current.id
            cat.permissions = [p["name"] for p in current.permissions]
        await self.session.flush()
        if cat.status == CatStatus.PUBLISHED:
            for draft in drafts:
                self.event(
                    events.CatVersionPublished(
                        cat_id=cat.id,
                        slug=cat.slug,
                        version=draft.version,
                        permissions=[p["name"] for p in draft.permissions],
                        current=current is not None and draft.id == current.id,
                    )
                )

    # Moderation

    async def submit(self, principal: Principal, slug: str) -> Cat:
        cat = await self.managed(slug, principal)
        if cat.status not in (CatStatus.DRAFT, CatStatus.REJECTED):
            raise IllegalTransition("submitted", cat.status)
        if not any(v.status == VersionStatus.DRAFT for v in await self.versions.of_cat(cat.id)):
            raise Conflict("Add a version before submitting the cat for review.")
        cat.status, cat.submitted_at, cat.moderation_reason = CatStatus.PENDING_REVIEW, datetime.now(UTC), None
        self.event(events.CatSubmitted(cat_id=cat.id, slug=cat.slug, publisher_id=cat.publisher_id))
        await self.session.flush()
        return cat

    async def approve(self, admin: Principal, slug: str) -> Cat:
        cat = await self.moderated(slug)
        if cat.status != CatStatus.PENDING_REVIEW:
            raise IllegalTransition("approved", cat.status)
        await self.go_live(cat)
        return cat

    async def go_live(self, cat: Cat) -> None:
        """Publish a cat with every draft version it has: one ``cat.published`` says it all."""
        drafts = [v for v in await self.versions.of_cat(cat.id) if v.status == VersionStatus.DRAFT]
        await self.publish_versions(cat, drafts)  # before the status flips: no version events
        await self.webhook_secrets.ensure(cat.id)  # provisioning webhooks are signed from the start
        now = datetime.now(UTC)
        cat.status, cat.moderation_reason, cat.updated_at = CatStatus.PUBLISHED, None, now
        cat.published_at = cat.published_at or now
        current = await self.versions.by_id(cat.current_version_id) if cat.current_version_id else None
        self.event(
            events.CatPublished(
                cat_id=cat.id,
                slug=cat.slug,
                name=cat.name,
                category=cat.category,
                publisher_id=cat.publisher_id,
                version=current.version if current else None,
            )
        )
        await self.session.flush()

    async def reject(self, admin: Principal, slug: str, reason: str) -> Cat:
        return await self._moderate(admin, slug, (CatStatus.PENDING_REVIEW,), CatStatus.REJECTED, "rejected", reason)

    async def suspend(self, admin: Principal, slug: str, reason: str) -> Cat:
        return await self._moderate(admin, slug, (CatStatus.PUBLISHED,), CatStatus.SUSPENDED, "suspended", reason)

    async def delist(self, admin: Principal, slug: str, reason: str) -> Cat:
        sources = (CatStatus.PUBLISHED, CatStatus.SUSPENDED)
        return await self._moderate(admin, slug, sources, CatStatus.DELISTED, "delisted", reason)

    async def reinstate(self, admin: Principal, slug: str) -> Cat:
        cat = await self.moderated(slug)
        if cat.status not in HIDDEN:
            raise IllegalTransition("reinstated", cat.status)
        if cat.orphaned_at is not None:
            raise Conflict("The cat's manifest folder is gone; restore it and sync again to bring the cat back.")
        cat.status, cat.moderation_reason, cat.updated_at = CatStatus.PUBLISHED, None, datetime.now(UTC)
        self.event(events.CatReinstated(cat_id=cat.id, slug=cat.slug, by=admin.user_id))
        await self.session.flush()
        return cat

    async def _moderate(
        self, admin: Principal, slug: str, sources: tuple[CatStatus, ...], target: CatStatus, action: str, reason: str
    ) -> Cat:
        cat = await self.moderated(slug)
        if cat.status not in sources:
            raise IllegalTransition(action, cat.status)
        await self.take_down(cat, target, reason, by=admin.user_id)
        return cat

    async def take_down(
        self, cat: Cat, target: CatStatus, reason: str, *, by: uuid.UUID | None, orphaned: bool = False
    ) -> None:
        cat.status, cat.moderation_reason, cat.updated_at = target, reason, datetime.now(UTC)
        if target == CatStatus.DELISTED:
            self.event(events.CatDelisted(cat_id=cat.id, slug=cat.slug, reason=reason, by=by, orphaned=orphaned))
        elif by is None:
            raise ValueError(f"a cat is {target} by an admin")
        elif target == CatStatus.REJECTED:
            self.event(events.CatRejected(cat_id=cat.id, slug=cat.slug, reason=reason, by=by))
        else:
            self.event(events.CatSuspended(cat_id=cat.id, slug=cat.slug, reason=reason, by=by))
        await self.session.flush()


def _columns(data: CatFields | dict[str, Any]) -> dict[str, Any]:
    """API values as the columns store them (JSON mode: URLs as strings); never the slug."""
    # Only the cat's own fields: a manifest carries more (versions, images) that are not columns.
    values = data.model_dump(mode="json", include=set(CatFields.model_fields)) if isinstance(data, CatFields) else data
    return {k: v for k, v in values.items() if k != "slug"}


def _at(loc: str, field: str) -> str:
    return f"{loc}.{field}" if loc else field
