"""Installation API keys: what the owner's own application calls the proxy with.

Shown once at creation, kept only as a SHA-256 hash (the key has 256 bits of randomness, so a
fast hash is enough), and recognisable by their ``chk_`` prefix.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select

from cathouse.contracts.keys import API_KEY_PREFIX
from cathouse.installation import lifecycle
from cathouse.installation.dependencies import Installations, Session
from cathouse.installation.errors import InstallationNotFound
from cathouse.installation.models import ApiKey, InstallationStatus
from cathouse.platform.errors import Conflict, NotFound
from cathouse.platform.openapi import problems
from cathouse.platform.schemas import NonBlankLine, Strict
from cathouse.platform.security import CurrentUser

router = APIRouter(prefix="/api/v1/installations/{installation_id}/api-keys", tags=["api keys"])

SHOWN_PREFIX = 12
MAX_LIVE_KEYS = 20


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeyIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "billing backend"}]})

    name: Annotated[str, StringConstraints(min_length=1, max_length=64), NonBlankLine]


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewApiKey(ApiKeyOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "9c3f6a2e-1d4b-4e8f-a0b7-6c5d4e3f2a1b",
                    "name": "billing backend",
                    "prefix": "chk_Xy3aP9Qm",
                    "created_at": "2026-05-01T12:00:00Z",
                    "last_used_at": None,
                    "revoked_at": None,
                    "key": "chk_Xy3aP9Qm2vTn8LwK4rJ6hF1dS5gB7cZ0eA3uY9iO2pE",
                }
            ]
        }
    )

    key: str = Field(description="The key itself. Shown this once: store it now.")


def _out(row: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=NewApiKey,
    summary="Create an API key (shown once)",
    responses=problems(
        InstallationNotFound,
        (lifecycle.IllegalTransition, "The installation is being (or has been) uninstalled."),
        (Conflict, f"The installation has {MAX_LIVE_KEYS} live keys; revoke one first."),
    ),
)
async def create(
    installation_id: uuid.UUID, body: ApiKeyIn, user: CurrentUser, installations: Installations, session: Session
) -> NewApiKey:
    installation = await installations.owned(user, installation_id, lock=True)
    if installation.status in (InstallationStatus.UNINSTALLING, InstallationStatus.UNINSTALLED):
        raise lifecycle.IllegalTransition(installation.status, "given a key")
    live = (
        await session.scalars(
            select(ApiKey.id).where(ApiKey.installation_id == installation.id, ApiKey.revoked_at.is_(None))
        )
    ).all()
    if len(live) >= MAX_LIVE_KEYS:
        raise Conflict(f"An installation has at most {MAX_LIVE_KEYS} live keys; revoke one first.")
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        id=uuid.uuid4(),
        installation_id=installation.id,
        name=body.name,
        prefix=key[:SHOWN_PREFIX],
        key_hash=hash_key(key),
        created_by=user.user_id,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return NewApiKey(**_out(row).model_dump(), key=key)


@router.get(
    "",
    response_model=list[ApiKeyOut],
    summary="An installation's API keys (never the keys themselves)",
    name="list",
    responses=problems(InstallationNotFound),
)
async def list_keys(
    installation_id: uuid.UUID, user: CurrentUser, installations: Installations, session: Session
) -> list[ApiKeyOut]:
    installation = await installations.visible(user, installation_id)
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.installation_id == installation.id).order_by(ApiKey.created_at.desc())
    )
    return [_out(row) for row in rows]


@router.delete(
    "/{key_id}",
    status_code=204,
    summary="Revoke an API key; it stops working at once",
    responses=problems(InstallationNotFound, (NotFound, "There is no such API key.")),
)
async def revoke(
    installation_id: uuid.UUID, key_id: uuid.UUID, user: CurrentUser, installations: Installations, session: Session
) -> Response:
    installation = await installations.owned(user, installation_id)
    row = await session.scalar(
        select(ApiKey).where(ApiKey.installation_id == installation.id, ApiKey.id == key_id).with_for_update()
    )
    if row is None:
        raise NotFound("There is no such API key.")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
    return Response(status_code=204)
