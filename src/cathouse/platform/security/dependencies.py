"""Typed dependencies: an endpoint's signature says who may call it.

async def publish(cat: CatIn, user: DeveloperUser) -> Cat: ...
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cathouse.platform.errors import Forbidden, Unauthorized
from cathouse.platform.security.principal import Principal
from cathouse.platform.security.tokens import InvalidToken, TokenVerifier

_bearer = HTTPBearer(auto_error=False, description="An access token from `POST /api/v1/auth/login`.")


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
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal | None:
    if credentials is None:
        return None
    return await authenticate(request, credentials.credentials)


async def current_principal(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
    if principal is None:
        raise NotAuthenticated("Sign in: this needs a bearer access token.")
    return principal


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
DeveloperUser = Annotated[Principal, Depends(developer_principal)]
AdminUser = Annotated[Principal, Depends(admin_principal)]
