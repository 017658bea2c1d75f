"""A cat's OAuth 2.0 client, for its publisher: set the client id and secret, see which id is set."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cathouse.catalog.dependencies import Cats
from cathouse.catalog.errors import CatNotFound
from cathouse.catalog.oauth_clients import OAuthClients
from cathouse.catalog.schemas import SlugPath
from cathouse.platform.errors import NotFound
from cathouse.platform.openapi import problems
from cathouse.platform.schemas import Strict
from cathouse.platform.security import DeveloperUser

router = APIRouter(prefix="/api/v1/cats", tags=["oauth clients"])

# RFC 6749 appendix A.1/A.2: client ids and secrets are printable ASCII.
ClientText = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x20-\x7E]+$")]


class OAuthClientIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"client_id": "cathouse", "client_secret": "s3cr3t"}]})

    client_id: ClientText
    client_secret: ClientText = Field(description="Sealed at once; never shown again, to anyone.")


class OAuthClientOut(BaseModel):
    client_id: str
    secret_set: bool = Field(description="Always true: the secret is kept, and never returned.")
    updated_at: datetime


class NoOAuthClient(NotFound):
    """The cat has no OAuth client set."""

    def __init__(self) -> None:
        super().__init__("This cat has no OAuth client yet; its publisher sets one with PUT.")


def _out(client_id: str, updated_at: datetime) -> OAuthClientOut:
    return OAuthClientOut(client_id=client_id, secret_set=True, updated_at=updated_at)


@router.put(
    "/{slug}/oauth-client",
    response_model=OAuthClientOut,
    summary="Set the cat's OAuth 2.0 client id and secret (the cat's publisher)",
    responses=problems(CatNotFound),
)
async def put_client(
    slug: SlugPath, body: OAuthClientIn, user: DeveloperUser, cats: Cats, response: Response
) -> OAuthClientOut:
    cat = await cats.managed(slug, user)
    row = await OAuthClients(cats.session, cats.master_key).put(cat.id, body.client_id, body.client_secret)
    response.headers["Cache-Control"] = "no-store"
    return _out(row.client_id, row.updated_at)


@router.get(
    "/{slug}/oauth-client",
    response_model=OAuthClientOut,
    summary="The cat's OAuth 2.0 client id (the cat's publisher); never its secret",
    responses=problems(CatNotFound, NoOAuthClient),
)
async def get_client(slug: SlugPath, user: DeveloperUser, cats: Cats) -> OAuthClientOut:
    cat = await cats.managed(slug, user)
    row = await OAuthClients(cats.session, cats.master_key).get(cat.id)
    if row is None:
        raise NoOAuthClient()
    return _out(row.client_id, row.updated_at)
