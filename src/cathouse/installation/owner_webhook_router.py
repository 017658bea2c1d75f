"""The signed-in user's own notification webhook: register, replace, rotate its secret, remove.

Any signed-in user, for themselves only: the path names no user, so nobody reaches another's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StrictBool, UrlConstraints

from cathouse.installation.dependencies import Session
from cathouse.installation.models import OwnerWebhook
from cathouse.installation.owner_webhooks import NoOwnerWebhook, OwnerWebhooks
from cathouse.platform.errors import Unprocessable
from cathouse.platform.openapi import problems
from cathouse.platform.schemas import HttpsUrl, Strict
from cathouse.platform.security import CurrentUser

# Before the router of "/{installation_id}" routes, which would read the literal as an id.
router = APIRouter(prefix="/api/v1/installations/owner-webhook", tags=["owner webhook"])

# As the catalog's webhook URLs: https, or plain http on a developer's machine (the published
# document says which; the server refuses http unless `installation.webhook_allow_private`).
WebhookUrl = Annotated[
    HttpUrl, UrlConstraints(max_length=2048, allowed_schemes=["https", "http"]), HttpsUrl(http_in_development=True)
]


class OwnerWebhookIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"url": "https://example.com/cathouse/notifications", "rotate_secret": False}]}
    )

    url: WebhookUrl = Field(description="Receives signed notifications about your installations.")
    # Strict: 0 or "no" is not a boolean the schema allows, so it is refused rather than read as false.
    rotate_secret: StrictBool = Field(
        default=False, description="Make a new signing secret; the old one stops at once."
    )


class OwnerWebhookOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.com/cathouse/notifications",
                    "created_at": "2026-05-01T12:00:00Z",
                    "updated_at": "2026-05-01T12:00:00Z",
                    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                }
            ]
        }
    )

    url: str
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(
        default=None,
        description="The signing secret (whsec_...): only in the answer that made or rotated it. Store it now.",
    )


def _owner_webhooks(request: Request, session: Session) -> OwnerWebhooks:
    return OwnerWebhooks(session, request.app.state.settings.master_key_value())


Store = Annotated[OwnerWebhooks, Depends(_owner_webhooks)]


def _out(row: OwnerWebhook, secret: str | None = None) -> OwnerWebhookOut:
    return OwnerWebhookOut(url=row.url, created_at=row.created_at, updated_at=row.updated_at, secret=secret)


@router.put(
    "",
    response_model=OwnerWebhookOut,
    response_model_exclude_none=True,
    summary="Register or replace your webhook (its secret shown once)",
    name="put",
    responses=problems((Unprocessable, "The URL is not https (plain http only where the platform allows it).")),
)
async def put(
    body: OwnerWebhookIn, user: CurrentUser, store: Store, request: Request, response: Response
) -> OwnerWebhookOut:
    url = str(body.url)
    if body.url.scheme == "http" and not request.app.state.settings.installation.webhook_allow_private:
        raise Unprocessable("body.url", "must be an https URL")
    row, secret = await store.put(user.user_id, url, rotate=body.rotate_secret)
    if secret is not None:
        response.headers["Cache-Control"] = "no-store"
    return _out(row, secret)


@router.get(
    "",
    response_model=OwnerWebhookOut,
    response_model_exclude_none=True,
    summary="Your webhook (never its secret)",
    name="read",
    responses=problems(NoOwnerWebhook),
)
async def read(user: CurrentUser, store: Store) -> OwnerWebhookOut:
    return _out(await store.read(user.user_id))


@router.delete("", status_code=204, summary="Remove your webhook", name="delete", responses=problems(NoOwnerWebhook))
async def remove(user: CurrentUser, store: Store) -> Response:
    await store.delete(user.user_id)
    return Response(status_code=204)
