"""One cat's OAuth 2.0 provider, as its version declares it, spoken to with Authlib.

Every call first checks the provider's address with the same SSRF rules as webhooks (a public
address, unless private ones are allowed for development). Failures come out as
:class:`ProviderError`, whose message names the provider's error code and never a token.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from authlib.common.security import generate_token

from cathouse.contracts.reads import OAuthClientInfo
from cathouse.contracts.secrets import ProviderOptions
from cathouse.platform.netguard import BlockedAddress, check_public_url
from cathouse.platform.settings import Settings

REDIRECT_PATH = "/api/v1/oauth/callback"


def provider_options(settings: Settings) -> ProviderOptions:
    """How this platform speaks to providers: where owners come back, timeouts, refresh margin."""
    section = settings.installation
    return ProviderOptions(
        redirect_uri=settings.public_origin() + REDIRECT_PATH,
        timeout=section.oauth_timeout,
        refresh_margin=section.oauth_refresh_margin,
        allow_private=section.oauth_allow_private,
    )


class ProviderError(Exception):
    """The provider refused or failed. ``invalid_grant``: the grant (code or refresh token) is no
    longer good, only the owner can fix it; ``failed``: anything else, worth trying again."""

    def __init__(self, kind: Literal["invalid_grant", "failed"], message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Grant:
    """What a token endpoint issued."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    token_type: str
    scope: str | None
    expires_in: float | None


@dataclass(frozen=True)
class OAuthSpec:
    """A version's ``credentials`` when its type is oauth2 (see the catalog's OAuth2Credentials)."""

    grant: str
    authorization_url: str | None
    token_url: str
    revocation_url: str | None
    scopes: tuple[str, ...]
    scope_separator: str
    pkce: bool
    token_placement: str
    query_param: str
    extra_authorize_params: dict[str, str]

    @classmethod
    def of(cls, credentials: dict[str, Any]) -> OAuthSpec | None:
        if credentials.get("type") != "oauth2":
            return None
        return cls(
            grant=credentials.get("grant", "authorization_code"),
            authorization_url=credentials.get("authorization_url"),
            token_url=credentials["token_url"],
            revocation_url=credentials.get("revocation_url"),
            scopes=tuple(credentials.get("scopes", ())),
            scope_separator=credentials.get("scope_separator", " "),
            pkce=credentials.get("pkce", True),
            token_placement=credentials.get("token_placement", "header"),
            query_param=credentials.get("query_param", "access_token"),
            extra_authorize_params=dict(credentials.get("extra_authorize_params", {})),
        )

    @property
    def scope(self) -> str | None:
        return self.scope_separator.join(self.scopes) or None


def new_verifier() -> str:
    """A PKCE code verifier: 64 characters of the unreserved set (RFC 7636 4.1)."""
    verifier: str = generate_token(64)
    return verifier


class Provider:
    def __init__(self, spec: OAuthSpec, client: OAuthClientInfo, options: ProviderOptions) -> None:
        self.spec = spec
        self.client = client
        self.redirect_uri = options.redirect_uri
        self.timeout = options.timeout
        self.allow_private = options.allow_private

    def _session(self) -> Any:
        # Imported here, not with the module: Authlib's client brings its OpenID Connect and JOSE
        # modules along, a noticeable share of the platform's start-up, for calls made only when
        # an OAuth cat is connected or refreshed.
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        # Redirects are not followed: a token endpoint must not bounce credentials elsewhere.
        return AsyncOAuth2Client(
            client_id=self.client.client_id,
            client_secret=self.client.client_secret,
            scope=self.spec.scope,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256" if self.spec.pkce else None,
            timeout=self.timeout,
            follow_redirects=False,
        )

    def authorization_url(self, state: str, verifier: str | None) -> str:
        assert self.spec.authorization_url is not None, "checked when the version was written"
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        client = AsyncOAuth2Client(
            client_id=self.client.client_id,
            scope=self.spec.scope,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256" if self.spec.pkce else None,
        )
        url, _ = client.create_authorization_url(
            self.spec.authorization_url, state=state, code_verifier=verifier, **self.spec.extra_authorize_params
        )
        return str(url)

    async def exchange(self, code: str, verifier: str | None) -> Grant:
        extra = {"code_verifier": verifier} if verifier else {}
        return await self._token("authorization_code", code=code, redirect_uri=self.redirect_uri, **extra)

    async def refresh(self, refresh_token: str) -> Grant:
        return await self._token("refresh_token", refresh_token=refresh_token)

    async def client_credentials(self) -> Grant:
        return await self._token("client_credentials")

    async def revoke(self, token: str, hint: Literal["access_token", "refresh_token"]) -> None:
        """RFC 7009: tell the provider a token is no longer wanted. Raises ProviderError."""
        if self.spec.revocation_url is None:
            return
        await self._check(self.spec.revocation_url)
        try:
            async with self._session() as session, asyncio.timeout(self.timeout):
                response = await session.revoke_token(self.spec.revocation_url, token=token, token_type_hint=hint)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise ProviderError(
                "failed", f"the provider's revocation endpoint could not be reached ({_name(exc)})"
            ) from None
        if response.status_code != 200:
            raise ProviderError("failed", f"the provider's revocation endpoint answered {response.status_code}")

    async def _token(self, grant_type: str, **body: str) -> Grant:
        from authlib.integrations.httpx_client import OAuthError

        await self._check(self.spec.token_url)
        try:
            async with self._session() as session, asyncio.timeout(self.timeout):
                if grant_type == "refresh_token":
                    token = await session.refresh_token(self.spec.token_url, **body)
                else:
                    token = await session.fetch_token(self.spec.token_url, grant_type=grant_type, **body)
        except OAuthError as exc:
            code = str(exc.error or "error")[:64]
            kind: Literal["invalid_grant", "failed"] = "invalid_grant" if code == "invalid_grant" else "failed"
            raise ProviderError(kind, f"the provider refused the {grant_type} grant ({code})") from None
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            raise ProviderError("failed", f"the provider's token endpoint answered {status}") from None
        except (httpx.HTTPError, TimeoutError) as exc:
            raise ProviderError(
                "failed", f"the provider's token endpoint could not be reached ({_name(exc)})"
            ) from None
        except ValueError:
            raise ProviderError(
                "failed", "the provider's token endpoint answered something that is not a token"
            ) from None
        return _grant(token)

    async def _check(self, url: str) -> None:
        try:
            await check_public_url(url, allow_private=self.allow_private)
        except BlockedAddress as exc:
            raise ProviderError("failed", f"the provider's address is not allowed: {exc}") from None
        except OSError:
            raise ProviderError("failed", "the provider's host name does not resolve") from None


def _grant(token: dict[str, Any]) -> Grant:
    access = token.get("access_token")
    if not isinstance(access, str) or not access:
        raise ProviderError("failed", "the provider's token endpoint answered without an access_token")
    refresh = token.get("refresh_token")
    expires_in = token.get("expires_in")
    try:
        lifetime = float(expires_in) if expires_in is not None else None
    except (TypeError, ValueError):
        lifetime = None
    scope = token.get("scope")
    return Grant(
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        token_type=str(token.get("token_type") or "Bearer")[:32],
        scope=scope if isinstance(scope, str) else None,
        expires_in=lifetime if lifetime is not None and lifetime > 0 else None,
    )


def _name(exc: BaseException) -> str:
    return "timed out" if isinstance(exc, TimeoutError | httpx.TimeoutException) else type(exc).__name__
