from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from cathouse.auth.dependencies import Accounts, Context, Limiter, client_address
from cathouse.auth.errors import EmailTaken, InvalidCredentials, InvalidRefreshToken
from cathouse.auth.schemas import LoginIn, RefreshIn, RegisterIn, TokenPair, UserOut, Validated
from cathouse.auth.service import client_fingerprint
from cathouse.platform.openapi import BEARER_REQUIRED, problems
from cathouse.platform.ratelimit import LimiterUnavailable, RateLimited
from cathouse.platform.security import CurrentUser
from cathouse.platform.security.dependencies import NotAuthenticated, authenticate

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=201,
    response_model=UserOut,
    summary="Create an account",
    responses=problems(EmailTaken, RateLimited, LimiterUnavailable),
)
async def register(
    body: RegisterIn, request: Request, accounts: Accounts, limiter: Limiter, context: Context
) -> UserOut:
    await limiter.hit(context.settings.auth.register_rate, "register", client_address(request))
    user = await accounts.register(body.email, body.password, body.display_name)
    return UserOut.model_validate(user)


@router.post(
    "/login",
    response_model=TokenPair,
    summary="Sign in with email and password",
    responses=problems(InvalidCredentials, RateLimited, LimiterUnavailable),
)
async def login(body: LoginIn, request: Request, accounts: Accounts, limiter: Limiter, context: Context) -> TokenPair:
    await limiter.hit(context.settings.auth.login_rate, "login", client_address(request))
    return await accounts.login(body.email, body.password)


@router.post(
    "/refresh",
    response_model=TokenPair,
    summary="Trade a refresh token for a new pair",
    responses=problems(InvalidRefreshToken),
)
async def refresh(body: RefreshIn, request: Request, accounts: Accounts) -> TokenPair:
    client = client_fingerprint(request.headers.get("user-agent", ""), client_address(request))
    return await accounts.refresh(body.refresh_token, client)


@router.post("/logout", status_code=204, summary="End this session (its refresh-token family)")
async def logout(body: RefreshIn, accounts: Accounts) -> Response:
    await accounts.logout(body.refresh_token)
    return Response(status_code=204)


@router.post("/logout-all", status_code=204, summary="End every session of your account")
async def logout_all(user: CurrentUser, accounts: Accounts) -> Response:
    await accounts.logout_everywhere(user.user_id)
    return Response(status_code=204)


@router.get("/.well-known/jwks.json", summary="The public keys that verify access tokens", name="jwks")
async def jwks(context: Context) -> dict[str, Any]:
    return await context.keys.jwks()


@router.get(
    "/validate",
    status_code=200,
    response_model=Validated,
    summary="Forward-auth for gateways: 200 with X-User-ID and X-User-Roles, or 401",
    openapi_extra=BEARER_REQUIRED,
    responses={
        200: {"headers": {"X-User-ID": {"schema": {"type": "string"}}, "X-User-Roles": {"schema": {"type": "string"}}}}
    },
)
async def validate(request: Request, response: Response) -> Validated:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("Sign in: this needs a bearer access token.")
    principal = await authenticate(request, token.strip())
    roles = sorted(principal.roles)
    # Gateways read the headers; the body says the same for anyone calling it directly.
    response.headers["X-User-ID"] = str(principal.user_id)
    response.headers["X-User-Roles"] = ",".join(roles)
    return Validated(user_id=principal.user_id, roles=roles)
