"""OAuth 2.0 installations: send the owner to the provider, and take them back.

The authorize and callback routes accept the pages' session cookie besides a bearer token: a
browser follows them as plain navigations. The callback changes state on a GET with a cookie,
which other routes never do; here the state parameter is the guard (single use, bound to the
owner, made by `authorize` for this installation), as OAuth 2.0 intends.
"""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cathouse.installation.dependencies import Flow, Shown
from cathouse.installation.errors import InstallationNotFound
from cathouse.installation.lifecycle import IllegalTransition
from cathouse.installation.oauth.errors import (
    ConsentDenied,
    FlowRefusal,
    NoOAuthClient,
    NotOAuth,
    ProviderFailed,
    StateInvalid,
    StateOfAnotherUser,
)
from cathouse.installation.schemas import InstallationOut
from cathouse.platform.openapi import problems
from cathouse.platform.schemas import Strict
from cathouse.platform.security import BrowserUser, CurrentUser

router = APIRouter(tags=["oauth"])

# A path on this site: where the pages want the owner back (never another site: no open redirect).
ReturnTo = Annotated[str, StringConstraints(max_length=500, pattern=r"^/([^/\\\s#][^\s\\#]*)?$")]


class ReconnectIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"return_to": "/installations/5d1c2f4e"}]})

    return_to: ReturnTo | None = Field(default=None, description="Where to send the owner back (a path here).")


class AuthorizationOut(BaseModel):
    authorization_url: str = Field(description="Send the owner here, in their browser, to grant access.")
    expires_in: int = Field(description="Seconds the owner has to grant it.")


_START = problems(InstallationNotFound, IllegalTransition, NotOAuth, NoOAuthClient)


@router.get(
    "/api/v1/installations/{installation_id}/oauth/authorize",
    status_code=302,
    response_class=RedirectResponse,
    summary="Go to the cat's provider to grant access (the owner, in a browser)",
    responses={302: {"description": "To the provider's authorization page."}, **_START},
)
async def authorize(
    installation_id: uuid.UUID,
    user: BrowserUser,
    flow: Flow,
    return_to: Annotated[ReturnTo | None, Query(description="Where to come back to (a path here).")] = None,
) -> RedirectResponse:
    url = await flow.start(user, installation_id, return_to)
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


@router.post(
    "/api/v1/installations/{installation_id}/oauth/reconnect",
    response_model=AuthorizationOut,
    summary="Grant access again at the cat's provider: the URL to send the owner to",
    responses=_START,
)
async def reconnect(
    installation_id: uuid.UUID, user: CurrentUser, flow: Flow, body: ReconnectIn | None = None
) -> AuthorizationOut:
    url = await flow.start(user, installation_id, body.return_to if body else None)
    return AuthorizationOut(authorization_url=url, expires_in=flow.config.oauth_state_ttl)


@router.get(
    "/api/v1/oauth/callback",
    response_model=InstallationOut,
    summary="Where the provider sends the owner back: exchange the code, keep the tokens",
    responses={
        303: {"description": "Back to the page that started the authorization (`oauth=connected`, or `oauth_error`)."},
        **problems(StateInvalid, StateOfAnotherUser, ConsentDenied, ProviderFailed, NotOAuth, NoOAuthClient),
    },
)
async def callback(
    user: BrowserUser,
    flow: Flow,
    shown: Shown,
    state: Annotated[str, Query(min_length=1, max_length=200)],
    code: Annotated[str | None, Query(min_length=1, max_length=2000)] = None,
    error: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> InstallationOut | RedirectResponse:
    try:
        done = await flow.complete(user, state, code, error)
    except FlowRefusal as refusal:
        if refusal.return_to is None:
            raise
        # A browser: back to its page, which says why. The spent state stays spent.
        return RedirectResponse(_with(refusal.return_to, oauth_error=refusal.code), status_code=303)
    if done.return_to is not None:
        return RedirectResponse(_with(done.return_to, oauth="connected"), status_code=303)
    return await shown.one(done.installation)


def _with(path: str, **params: str) -> str:
    return path + ("&" if "?" in path else "?") + urlencode(params)
