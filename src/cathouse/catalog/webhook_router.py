"""A cat's webhook signing secrets, for its publisher: see them, rotate them with an overlap."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from cathouse.catalog.dependencies import Cats
from cathouse.catalog.errors import CatNotFound
from cathouse.catalog.schemas import SlugPath
from cathouse.platform.openapi import problems
from cathouse.platform.schemas import Strict
from cathouse.platform.security import DeveloperUser

router = APIRouter(prefix="/api/v1/cats", tags=["webhooks"])


class SigningSecret(BaseModel):
    id: uuid.UUID
    secret: str = Field(description="A Standard Webhooks `whsec_` key: verify `webhook-signature` with it.")
    created_at: datetime
    expires_at: datetime | None = Field(description="After a rotation, when this one stops signing.")


class RotateIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"overlap_hours": 24}]})

    # Strict: a JSON boolean is not a number of hours (Pydantic would read false as 0).
    overlap_hours: int = Field(
        default=24, ge=0, le=168, strict=True, description="How long the old secret goes on signing."
    )


@router.get(
    "/{slug}/webhook-secrets",
    response_model=list[SigningSecret],
    summary="The secrets provisioning webhooks are signed with (the cat's publisher)",
    responses=problems(CatNotFound),
)
async def list_secrets(slug: SlugPath, user: DeveloperUser, cats: Cats) -> list[SigningSecret]:
    cat = await cats.managed(slug, user)
    return [
        SigningSecret(id=row.id, secret=secret, created_at=row.created_at, expires_at=row.expires_at)
        for row, secret in await cats.webhook_secrets.live(cat.id)
    ]


@router.post(
    "/{slug}/webhook-secrets/rotate",
    response_model=list[SigningSecret],
    summary="A new signing secret; the old one signs beside it for the overlap",
    name="rotate_secret",
    responses=problems(CatNotFound),
)
async def rotate(slug: SlugPath, body: RotateIn, user: DeveloperUser, cats: Cats) -> list[SigningSecret]:
    cat = await cats.managed(slug, user)
    await cats.webhook_secrets.rotate(cat.id, timedelta(hours=body.overlap_hours))
    await cats.session.flush()
    return [
        SigningSecret(id=row.id, secret=secret, created_at=row.created_at, expires_at=row.expires_at)
        for row, secret in await cats.webhook_secrets.live(cat.id)
    ]
