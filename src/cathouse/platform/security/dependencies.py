"""Typed dependencies: an endpoint's signature says who may call it.

async def publish(cat: CatIn, user: DeveloperUser) -> Cat: ...
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from cathouse.platform.errors import Forbidden, Unauthorized
from cathouse.platform.security.principal import Principal
from cathouse.platform.security.session import COOKIE, SessionSeal
from cathouse.platform.security.tokens import InvalidToken, TokenVerifier

_DESCRIPTION = "An access token from `POST /api/v1/auth/login`."
_bearer = HTTPBearer(auto_error=False, description=_DESCRIPTION)
# The same bearer where signing in is optional: its own scheme name marks those operations, and
# the published OpenAPI turns it into "HTTPBearer, or nothing" (``cathouse.platform.openapi``).
OPTIONAL_BEARER = "HTTPBearerOptional"
_optional_bearer = HTTPBearer(auto_error=False, scheme_name=OPTIONAL_BEARER, description=_DESCRIPTION)
# The pages' session cookie, for what a browser reads without a bearer header (an EventSource).
_session_cookie = APIKeyCookie(
    name=COOKIE,
    auto_error=False,
    scheme_name="SessionCookie",
    description="The session cookie the web pages set when a person signs in.",
)


class NotAuthenticated(Unauthorized):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers["WWW-Authenticate"] = 'Bearer realm="cathouse"'


async def authenticate(request: Request, token: str) -> Principal:
    verifier: TokenVerifier = request.app.state.verifier
    try:
        principal = await verifier.verify(token)
    except InvalidToken as exc:
        raise NotAuthenticated(str(exc)) from None
    request.state.principal = principal
    return principal


async def optional_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)]
) -> Principal | None:
    if credentials is None:
        return None
    return await authenticate(request, credentials.credentials)


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise NotAuthenticated("Sign in: this needs a bearer access token.")
    return await authenticate(request, credentials.credentials)


def session_seal(request: Request) -> SessionSeal:
    """The seal of the pages' session cookie, made once per app from its master key."""
    state = request.app.state
    found: SessionSeal | None = getattr(state, "session_seal", None)
    if found is None:
        found = state.session_seal = SessionSeal(state.settings.master_key_value())
    return found


async def browser_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_session_cookie)],
) -> Principal:
    """The bearer token's caller or, without one, the signed-in person of the session cookie.

    Only for reads a browser makes without a bearer header: a route that changes something
    never takes it, so a cross-site form cannot act with a visitor's cookie.
    """
    if credentials is not None:
        return await authenticate(request, credentials.credentials)
    session = session_seal(request).open(cookie)
    if session is None or session.access_token is None:
        raise NotAuthenticated("Sign in: this needs a bearer access token or the session cookie of the pages.")
    return await authenticate(request, session.access_token)


async def optional_browser_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)],
    cookie: Annotated[str | None, Depends(_session_cookie)],
) -> Principal | None:
    """The bearer token's caller, else the session cookie's person while its token is good, else None.

    For images a page shows with ``<img>``: a draft's icon is seen by its publisher in the console
    (the browser sends the cookie, never a bearer header). Reads only, as ``browser_principal``.
    """
    if credentials is not None:
        return await authenticate(request, credentials.credentials)
    try:
        return await browser_principal(request, None, cookie)
    except NotAuthenticated:
        return None  # no session, or its token expired: the image is then one anyone may see, or none


async def developer_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_developer:
        raise Forbidden("Only developers may do this.")
    return principal


async def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("Only admins may do this.")
    return principal


OptionalUser = Annotated[Principal | None, Depends(optional_principal)]
CurrentUser = Annotated[Principal, Depends(current_principal)]
BrowserUser = Annotated[Principal, Depends(browser_principal)]
OptionalBrowserUser = Annotated[Principal | None, Depends(optional_browser_principal)]
DeveloperUser = Annotated[Principal, Depends(developer_principal)]
AdminUser = Annotated[Principal, Depends(admin_principal)]
