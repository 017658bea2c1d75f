"""Install cats, change and consent, move installations through their lifecycle."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from cathouse.installation.dependencies import Flow, Installations, Session, Shown
from cathouse.installation.errors import InstallationNotFound, NameTaken, NoSuchCat, NoSuchVersion
from cathouse.installation.lifecycle import IllegalTransition
from cathouse.installation.models import InstallationStatus
from cathouse.installation.repository import InstallationRepository
from cathouse.installation.schemas import (
    InstallationOut,
    InstallationPage,
    InstallationReason,
    InstallationUpdate,
    InstallIn,
    PermissionsIn,
    SecretsIn,
    Status,
    UpgradeIn,
)
from cathouse.installation.validation import InvalidSettings
from cathouse.platform.errors import Conflict
from cathouse.platform.openapi import problems
from cathouse.platform.pagination import MAX_LIMIT, InvalidCursor, decode_time_cursor, encode_time_cursor
from cathouse.platform.schemas import SingleLine
from cathouse.platform.security import CurrentUser

router = APIRouter(prefix="/api/v1/installations", tags=["installations"])
_MOVE = problems(InstallationNotFound, IllegalTransition)


@router.post(
    "",
    status_code=201,
    response_model=InstallationOut,
    summary="Install a cat",
    name="create",
    responses=problems(NoSuchCat, NoSuchVersion, NameTaken, InvalidSettings),
)
async def install(body: InstallIn, user: CurrentUser, installations: Installations, shown: Shown) -> InstallationOut:
    return await shown.one(await installations.install(user, body))


@router.get(
    "",
    response_model=InstallationPage,
    summary="Your installations, newest first (admins: everyone's)",
    name="list",
    responses=problems(InvalidCursor),
)
async def list_installations(
    user: CurrentUser,
    session: Session,
    shown: Shown,
    status: Status | None = None,
    everyone: Annotated[bool, Query(description="Admins only: every user's installations.")] = False,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> InstallationPage:
    owner = None if everyone and user.is_admin else user.user_id
    after = decode_time_cursor(cursor) if cursor else None
    rows = list(await InstallationRepository(session).of_user(owner, after=after, limit=limit + 1, status=status))
    next_cursor = encode_time_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return InstallationPage(items=await shown.many(rows[:limit]), next_cursor=next_cursor)


@router.get(
    "/{installation_id}",
    response_model=InstallationOut,
    summary="One installation",
    responses=problems(InstallationNotFound),
)
async def read(
    installation_id: uuid.UUID, user: CurrentUser, installations: Installations, shown: Shown
) -> InstallationOut:
    return await shown.one(await installations.visible(user, installation_id))


@router.patch(
    "/{installation_id}",
    response_model=InstallationOut,
    summary="Rename, or change settings",
    responses=problems(InstallationNotFound, NameTaken, InvalidSettings),
)
async def update(
    installation_id: uuid.UUID,
    body: InstallationUpdate,
    user: CurrentUser,
    installations: Installations,
    shown: Shown,
) -> InstallationOut:
    changes = body.model_dump(exclude_unset=True)
    return await shown.one(await installations.update(user, installation_id, changes))


@router.put(
    "/{installation_id}/secrets",
    response_model=InstallationOut,
    summary="Replace every secret field",
    responses=problems(InstallationNotFound, InvalidSettings),
)
async def replace_secrets(
    installation_id: uuid.UUID, body: SecretsIn, user: CurrentUser, installations: Installations, shown: Shown
) -> InstallationOut:
    return await shown.one(await installations.replace_secrets(user, installation_id, body.secrets))


@router.put(
    "/{installation_id}/permissions",
    response_model=InstallationOut,
    summary="Grant or revoke optional ones",
    responses=_MOVE,
)
async def set_permissions(
    installation_id: uuid.UUID, body: PermissionsIn, user: CurrentUser, installations: Installations, shown: Shown
) -> InstallationOut:
    updated = await installations.set_permissions(user, installation_id, set(body.permissions))
    return await shown.one(updated)


@router.post(
    "/{installation_id}/upgrade",
    response_model=InstallationOut,
    summary="Move to another version",
    responses=problems(
        InstallationNotFound,
        NoSuchVersion,
        IllegalTransition,
        (Conflict, "The installation runs that version already."),
        InvalidSettings,
    ),
)
async def upgrade(
    installation_id: uuid.UUID, body: UpgradeIn, user: CurrentUser, installations: Installations, shown: Shown
) -> InstallationOut:
    return await shown.one(await installations.upgrade(user, installation_id, body.version))


@router.post(
    "/{installation_id}/permissions/accept",
    response_model=InstallationOut,
    summary="Accept what an upgrade asks for, and finish it",
    responses=_MOVE,
)
async def accept_permissions(
    installation_id: uuid.UUID, user: CurrentUser, installations: Installations, shown: Shown
) -> InstallationOut:
    return await shown.one(await installations.accept_permissions(user, installation_id))


@router.post(
    "/{installation_id}/suspend",
    response_model=InstallationOut,
    summary="Pause (admins: with a reason)",
    responses=_MOVE,
)
async def suspend(
    installation_id: uuid.UUID, body: InstallationReason, user: CurrentUser, installations: Installations, shown: Shown
) -> InstallationOut:
    return await shown.one(await installations.suspend(user, installation_id, body.reason))


@router.post(
    "/{installation_id}/resume",
    response_model=InstallationOut,
    summary="Run a suspended installation again (what an admin suspended: admins, with a reason)",
    responses=problems(
        InstallationNotFound, IllegalTransition, (Conflict, "An admin suspended it: only an admin can resume it.")
    ),
)
async def resume(
    installation_id: uuid.UUID,
    user: CurrentUser,
    installations: Installations,
    shown: Shown,
    body: InstallationReason | None = None,
) -> InstallationOut:
    reason = body.reason if body is not None else None
    return await shown.one(await installations.resume(user, installation_id, reason))


@router.post(
    "/{installation_id}/retry", response_model=InstallationOut, summary="Provision a failed one again", responses=_MOVE
)
async def retry(
    installation_id: uuid.UUID, user: CurrentUser, installations: Installations, shown: Shown
) -> InstallationOut:
    installation = await installations.owned(user, installation_id, lock=True)
    await installations.move(installation, InstallationStatus.PROVISIONING, by=user.user_id)
    return await shown.one(installation)


@router.delete(
    "/{installation_id}",
    response_model=InstallationOut,
    summary="Uninstall; its secrets are destroyed",
    name="uninstall",
    responses=_MOVE,
)
async def uninstall(
    installation_id: uuid.UUID,
    user: CurrentUser,
    installations: Installations,
    shown: Shown,
    oauth: Flow,
    reason: Annotated[
        Annotated[str, SingleLine] | None,
        Query(max_length=500, description="Required of an admin uninstalling another user's installation."),
    ] = None,
) -> InstallationOut:
    return await shown.one(await installations.uninstall(user, installation_id, reason, before_shredding=oauth.revoke))
