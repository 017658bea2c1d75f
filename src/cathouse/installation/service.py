"""Installations: install, change, consent, move through the lifecycle; every move is an event."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.contracts.events import installation as events
from cathouse.contracts.reads import CatReader, VersionInfo
from cathouse.installation import lifecycle
from cathouse.installation.credentials import Credentials
from cathouse.installation.errors import InstallationNotFound, NameTaken, NoSuchCat, NoSuchVersion
from cathouse.installation.keyring import Keyring
from cathouse.installation.models import GrantedPermission, Installation, InstallationStatus
from cathouse.installation.repository import InstallationRepository
from cathouse.installation.schemas import InstallIn
from cathouse.installation.validation import check_secrets, check_settings
from cathouse.platform.errors import Conflict, Unprocessable
from cathouse.platform.outbox import record
from cathouse.platform.security import Principal


class InstallationService:
    def __init__(self, session: AsyncSession, keyring: Keyring, cats: CatReader) -> None:
        self.session = session
        self.cats = cats
        self.installations = InstallationRepository(session)
        self.credentials = Credentials(session, keyring)

    def event(
        self, installation: Installation, kind: type[events.InstallationEvent], version: str, **payload: Any
    ) -> None:
        """Record ``kind`` with what every installation event names; ``payload`` is the rest."""
        ids = {"installation_id": installation.id, "user_id": installation.user_id, "cat_id": installation.cat_id}
        record(self.session, kind(**ids, version=version, **payload))

    async def visible(self, principal: Principal, installation_id: uuid.UUID, *, lock: bool = False) -> Installation:
        """The caller's installation, or for an admin anyone's: to read, suspend or uninstall.
        Another user's is a 404, as if it did not exist."""
        found = await self.installations.get(installation_id, for_update=lock)
        if found is None or not (found.user_id == principal.user_id or principal.is_admin):
            raise InstallationNotFound()
        return found

    async def owned(self, principal: Principal, installation_id: uuid.UUID, *, lock: bool = False) -> Installation:
        """The caller's own installation, to change. Anyone else's is a 404, an admin's too: admins
        moderate installations, they never act as their owners (settings, secrets, keys...)."""
        found = await self.installations.get(installation_id, for_update=lock)
        if found is None or found.user_id != principal.user_id:
            raise InstallationNotFound()
        return found

    async def moderated(
        self, principal: Principal, installation_id: uuid.UUID, reason: str | None, loc: str
    ) -> tuple[Installation, bool]:
        """An installation to suspend or uninstall, locked, and whether an admin is acting on
        someone else's: then a reason is required, recorded on the event its owner sees."""
        installation = await self.visible(principal, installation_id, lock=True)
        moderating = installation.user_id != principal.user_id
        if moderating and not (reason or "").strip():
            raise Unprocessable(loc, "an admin acting on another user's installation must give a reason")
        return installation, moderating

    async def version_of(self, installation: Installation) -> VersionInfo:
        version = await self.cats.version_by_id(self.session, installation.version_id)
        assert version is not None, "an installation's version is kept by a foreign key"
        return version

    async def install(self, principal: Principal, body: InstallIn) -> Installation:
        cat = await self.cats.cat_by_slug(self.session, body.cat)
        if cat is None or cat.status != "published" or cat.current_version_id is None:
            raise NoSuchCat()
        if body.version is None:
            version = await self.cats.version_by_id(self.session, cat.current_version_id)
        else:
            version = await self.cats.published_version(self.session, cat.id, body.version)
        if version is None:
            raise NoSuchVersion()
        granted = _check_grant(version, set(body.permissions), "body.permissions")
        check_settings(version, body.settings)
        check_secrets(version, body.secrets)
        if await self.installations.name_taken(principal.user_id, body.name):
            raise NameTaken(body.name)
        # An OAuth 2.0 cat waits for its owner to grant access at the provider before provisioning.
        authorizing = version.credentials.get("type") == "oauth2" and version.credentials.get("grant") != (
            "client_credentials"
        )
        installation = Installation(
            id=uuid.uuid4(),
            user_id=principal.user_id,
            cat_id=cat.id,
            version_id=version.id,
            name=body.name,
            status=InstallationStatus.AUTHORIZING if authorizing else InstallationStatus.PENDING,
            settings=body.settings,
        )
        self.installations.add(installation)
        await self.session.flush()
        for permission in sorted(granted):
            self.installations.add(
                GrantedPermission(installation_id=installation.id, permission=permission, granted_by=principal.user_id)
            )
        await self.credentials.create(installation.id, body.secrets)
        self.event(
            installation,
            events.InstallationCreated,
            version.version,
            name=installation.name,
            permissions=sorted(granted),
        )
        await self.session.flush()
        return installation

    async def update(self, principal: Principal, installation_id: uuid.UUID, changes: dict[str, Any]) -> Installation:
        installation = await self.owned(principal, installation_id, lock=True)
        _not_gone(installation)
        name = changes.get("name")
        if name is not None and await self.installations.name_taken(
            installation.user_id, name, other_than=installation.id
        ):
            raise NameTaken(name)
        version = await self.version_of(installation)
        if changes.get("settings") is not None:
            check_settings(version, changes["settings"])
        changed = sorted(k for k, v in changes.items() if v is not None and getattr(installation, k) != v)
        for key in changed:
            setattr(installation, key, changes[key])
        if changed:
            installation.updated_at = datetime.now(UTC)
            self.event(installation, events.InstallationUpdated, version.version, fields=changed)
        await self.session.flush()
        return installation

    async def replace_secrets(
        self, principal: Principal, installation_id: uuid.UUID, secrets: dict[str, str]
    ) -> Installation:
        installation = await self.owned(principal, installation_id, lock=True)
        _not_gone(installation)
        version = await self.version_of(installation)
        check_secrets(version, secrets)
        await self.credentials.replace(installation.id, secrets)
        installation.updated_at = datetime.now(UTC)
        self.event(installation, events.InstallationSecretsReplaced, version.version, fields=sorted(secrets))
        await self.session.flush()
        return installation

    async def move(
        self,
        installation: Installation,
        target: InstallationStatus,
        *,
        reason: str | None = None,
        by: uuid.UUID | None = None,
        by_admin: bool = False,
    ) -> None:
        """The one way an installation changes state: checked, timestamped, announced."""
        lifecycle.check(installation.status, target)
        previous = installation.status
        now = datetime.now(UTC)
        installation.status, installation.status_reason, installation.updated_at = target, reason or None, now
        if target == InstallationStatus.ACTIVE and installation.activated_at is None:
            installation.activated_at = now
        if target == InstallationStatus.UNINSTALLED:
            installation.uninstalled_at = now
        version = await self.version_of(installation)
        # by_admin: an admin, not the owner, did it: the owner's feed says so.
        moved = {"from_": previous, "to": target, "reason": reason or None, "by": by, "by_admin": by_admin or None}
        self.event(installation, events.InstallationStatusChanged, version.version, **moved)
        await self.session.flush()

    async def suspend(self, principal: Principal, installation_id: uuid.UUID, reason: str) -> Installation:
        installation, moderating = await self.moderated(principal, installation_id, reason, "body.reason")
        installation.suspended_by_moderator = moderating
        await self.move(
            installation, InstallationStatus.SUSPENDED, reason=reason, by=principal.user_id, by_admin=moderating
        )
        return installation

    async def resume(self, principal: Principal, installation_id: uuid.UUID, reason: str | None) -> Installation:
        """The owner resumes what they paused; what an admin suspended, only an admin resumes
        (with a reason the owner is told), or moderation would last until the owner's next click."""
        installation = await self.visible(principal, installation_id, lock=True)
        moderating = installation.user_id != principal.user_id
        by_moderator = installation.status == InstallationStatus.SUSPENDED and installation.suspended_by_moderator
        if moderating and not by_moderator:
            raise InstallationNotFound()  # the owner's own pause: admins do not act as owners
        if moderating and not (reason or "").strip():
            raise Unprocessable("body.reason", "an admin acting on another user's installation must give a reason")
        if by_moderator and not moderating:
            raise Conflict(
                f"An admin suspended this installation ({installation.status_reason}); only an admin can resume it."
            )
        if installation.status != InstallationStatus.SUSPENDED:
            raise lifecycle.IllegalTransition(installation.status, InstallationStatus.ACTIVE)
        target = InstallationStatus.PERMISSIONS_PENDING if installation.target_version_id else InstallationStatus.ACTIVE
        installation.suspended_by_moderator = False
        await self.move(installation, target, reason=reason, by=principal.user_id, by_admin=moderating)
        return installation

    async def uninstall(
        self,
        principal: Principal,
        installation_id: uuid.UUID,
        reason: str | None,
        before_shredding: Callable[[Installation], Awaitable[None]] | None = None,
    ) -> Installation:
        """``before_shredding`` runs while the secrets can still be read: to revoke OAuth tokens."""
        installation, moderating = await self.moderated(principal, installation_id, reason, "query.reason")
        await self.move(
            installation, InstallationStatus.UNINSTALLING, reason=reason, by=principal.user_id, by_admin=moderating
        )
        if before_shredding is not None:
            await before_shredding(installation)
        # From here no secret of this installation can ever be read again.
        await self.credentials.destroy(installation.id)
        return installation

    async def upgrade(self, principal: Principal, installation_id: uuid.UUID, version_label: str) -> Installation:
        installation = await self.owned(principal, installation_id, lock=True)
        if installation.status not in lifecycle.RUNNING | {InstallationStatus.SUSPENDED}:
            raise lifecycle.IllegalTransition(installation.status, "upgraded")
        current = await self.version_of(installation)
        target = await self.cats.published_version(self.session, installation.cat_id, version_label)
        if target is None:
            raise NoSuchVersion()
        if target.id == current.id:
            raise Conflict(f"The installation runs version {current.version} already.")
        check_settings(target, installation.settings, loc="settings")
        granted = {g.permission for g in (await self.installations.grants([installation.id]))[installation.id]}
        if target.required_permissions - granted:
            # Calls that need only what was granted keep working until the owner accepts.
            installation.target_version_id = target.id
            if installation.status != InstallationStatus.SUSPENDED:
                await self.move(
                    installation, InstallationStatus.PERMISSIONS_PENDING, reason=f"version {target.version}"
                )
            return installation
        await self._switch(installation, current, target, granted, principal.user_id)
        return installation

    async def accept_permissions(self, principal: Principal, installation_id: uuid.UUID) -> Installation:
        installation = await self.owned(principal, installation_id, lock=True)
        if installation.status != InstallationStatus.PERMISSIONS_PENDING or installation.target_version_id is None:
            raise lifecycle.IllegalTransition(installation.status, InstallationStatus.ACTIVE)
        current = await self.version_of(installation)
        target = await self.cats.version_by_id(self.session, installation.target_version_id)
        assert target is not None
        granted = {g.permission for g in (await self.installations.grants([installation.id]))[installation.id]}
        await self._switch(installation, current, target, granted, principal.user_id)
        await self.move(installation, InstallationStatus.ACTIVE, by=principal.user_id)
        return installation

    async def _switch(
        self,
        installation: Installation,
        current: VersionInfo,
        target: VersionInfo,
        granted: set[str],
        by: uuid.UUID,
    ) -> None:
        added = sorted(target.required_permissions - granted)
        dropped = sorted(granted - target.permission_names)  # no longer exists in the new version
        for permission in added:
            self.installations.add(
                GrantedPermission(installation_id=installation.id, permission=permission, granted_by=by)
            )
        await self.installations.revoke(installation.id, set(dropped))
        installation.version_id, installation.target_version_id = target.id, None
        installation.updated_at = datetime.now(UTC)
        self.event(installation, events.InstallationUpgraded, target.version, from_version=current.version)
        if added or dropped:
            self.event(
                installation, events.InstallationPermissionsChanged, target.version, granted=added, revoked=dropped
            )
        await self.session.flush()

    async def set_permissions(self, principal: Principal, installation_id: uuid.UUID, wanted: set[str]) -> Installation:
        installation = await self.owned(principal, installation_id, lock=True)
        _not_gone(installation)
        version = await self.version_of(installation)
        _check_grant(version, wanted, "body.permissions")
        granted = {g.permission for g in (await self.installations.grants([installation.id]))[installation.id]}
        added, removed = sorted(wanted - granted), sorted(granted - wanted)
        for permission in added:
            self.installations.add(
                GrantedPermission(installation_id=installation.id, permission=permission, granted_by=principal.user_id)
            )
        await self.installations.revoke(installation.id, set(removed))
        if added or removed:
            installation.updated_at = datetime.now(UTC)
            self.event(
                installation, events.InstallationPermissionsChanged, version.version, granted=added, revoked=removed
            )
        await self.session.flush()
        return installation


def _check_grant(version: VersionInfo, wanted: set[str], loc: str) -> set[str]:
    unknown = sorted(wanted - version.permission_names)
    if unknown:
        raise Unprocessable(loc, f"version {version.version} does not request {', '.join(unknown)}")
    missing = sorted(version.required_permissions - wanted)
    if missing:
        raise Unprocessable(loc, f"these permissions are required: {', '.join(missing)}")
    return wanted


def _not_gone(installation: Installation) -> None:
    if installation.status in (InstallationStatus.UNINSTALLING, InstallationStatus.UNINSTALLED):
        raise lifecycle.IllegalTransition(installation.status, "changed")
