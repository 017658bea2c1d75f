"""Local verification of access tokens against the auth service's public keys.

The key is chosen by ``kid`` from keys we hold, and the algorithm is the one pinned to that
key; nothing in the token's header (``alg``, ``jwk``, ``jku``, ``x5u``…) is trusted to pick
either. A verified token is remembered until it expires, so a hot path pays for the
signature check once per token, not once per request. Every request, cached or not, is then
checked against the process's table of revocations (:mod:`cathouse.platform.security.revocations`):
a dict lookup, no query.

Claims are held to their types: ``exp``, ``iat``, ``nbf`` and ``ver`` JSON integers (a string of
digits is not a NumericDate), ``sub`` and ``sid`` UUIDs in their canonical spelling, ``roles`` a
list of roles we know, ``jti`` a short string.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import jwt
from jwt import PyJWK
from loguru import logger

from cathouse.platform.cache import MISSING, Cache
from cathouse.platform.security.principal import Principal, Role
from cathouse.platform.security.revocations import Revocations, Revoked

ACCESS = "access"
ALLOWED_ALGORITHMS = frozenset({"EdDSA", "ES256"})
_KID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FORBIDDEN_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "crit"})
_REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "typ"]
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_JTI = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ROLES = {role.value: role for role in Role}
# Time to live of a token the verifier keeps when nothing says otherwise (the issuer's default).
_DEFAULT_TTL = 15 * 60


class InvalidToken(Exception):
    """The token is not one we issued, or no longer valid. The message is safe to show."""


class KeysUnavailable(Exception):
    """No key to verify tokens with could be had from ``url``: every token would be refused."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str
    algorithm: str
    key: Any  # a cryptography public key


class KeySource(Protocol):
    """Where the verifier finds public keys by ``kid``."""

    async def get(self, kid: str) -> VerificationKey | None: ...


def keys_from_jwks(jwks: Mapping[str, Any]) -> dict[str, VerificationKey]:
    keys: dict[str, VerificationKey] = {}
    for entry in jwks.get("keys", []):
        kid, alg = entry.get("kid"), entry.get("alg")
        if not isinstance(kid, str) or alg not in ALLOWED_ALGORITHMS:
            continue
        try:
            keys[kid] = VerificationKey(kid=kid, algorithm=alg, key=PyJWK(entry, algorithm=alg).key)
        except jwt.PyJWTError:
            logger.warning("skipping a malformed key in the JWKS", kid=kid)
    return keys


class JwksKeySource:
    """Public keys fetched from the auth service's JWKS, refreshed on an unknown ``kid``
    (at most once per ``min_interval``) and every ``max_age`` seconds."""

    def __init__(self, url: str, client: httpx.AsyncClient, *, min_interval: float = 5.0, max_age: float = 300.0):
        self.url = url
        self.client = client
        self.min_interval = min_interval
        self.max_age = max_age
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        # Why the last fetch gave no keys; None once one has.
        self.error: str | None = "not fetched yet"

    async def _refresh(self, *, force: bool = False) -> None:
        async with self._lock:
            if not force and time.monotonic() - self._fetched_at < self.min_interval:
                return
            self._fetched_at = time.monotonic()
            try:
                response = await self.client.get(self.url, timeout=5.0)
                response.raise_for_status()
                body = response.json()
                if not isinstance(body, dict):
                    raise ValueError("not an object")
                self._keys = keys_from_jwks(body)
                self.error = None if self._keys else "it lists no key we can use"
            except httpx.HTTPStatusError as exc:
                self.error = f"it answered {exc.response.status_code}"
            except httpx.TimeoutException:
                self.error = "it did not answer in time"
            except httpx.HTTPError as exc:
                self.error = f"could not connect ({exc or type(exc).__name__})"
            except ValueError:
                self.error = "its answer is not a JWKS"
            if self.error is not None:
                logger.warning("could not fetch the JWKS", url=self.url, error=self.error)

    async def get(self, kid: str) -> VerificationKey | None:
        stale = time.monotonic() - self._fetched_at > self.max_age
        if kid not in self._keys or stale:
            await self._refresh()
        return self._keys.get(kid)

    async def check(self) -> None:
        """Raise :class:`KeysUnavailable` unless keys are held, fetching them now if none are.

        A readiness probe calls this: while no key is held every token is refused, so the
        process must say it is not ready rather than answer 401 to everyone. Keys fetched
        earlier go on verifying while a refresh fails, so they count as ready.
        """
        if not self._keys:
            await self._refresh(force=True)
        if not self._keys:
            raise KeysUnavailable(self.url, self.error or "it lists no key we can use")


class TokenVerifier:
    def __init__(
        self,
        source: KeySource,
        *,
        issuer: str,
        audience: str,
        leeway: int = 30,
        cache_size: int = 10_000,
        revocations: Revocations | None = None,
    ) -> None:
        self.source = source
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.cache_size = cache_size
        self.revocations = revocations if revocations is not None else Revocations(keep_for=_DEFAULT_TTL + leeway)
        # Kept until the token expires, checked on each hit against the principal's own expiry.
        self._verified: Cache[bytes, tuple[Principal, str]] = Cache(cache_size)

    async def verify(self, token: str) -> Principal:
        try:
            return self.revocations.check(await self._verified_principal(token))
        except Revoked as exc:
            raise InvalidToken(str(exc)) from None

    async def _verified_principal(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._verified.get(digest)
        if cached is not MISSING:
            principal, kid = cached
            # Still unexpired, and its key not retired since (a rotation after a key leak).
            if principal.expires_at + self.leeway > time.time() and await self.source.get(kid) is not None:
                return principal
            self._verified.discard(digest)
        principal, kid = await self._verify(token)
        self._verified.set(digest, (principal, kid))
        return principal

    async def _verify(self, token: str) -> tuple[Principal, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("The token is malformed.") from None
        if _FORBIDDEN_HEADERS & header.keys():
            raise InvalidToken("The token's header is not acceptable.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not _KID.fullmatch(kid):
            raise InvalidToken("The token names no key we know.")
        key = await self.source.get(kid)
        if key is None:
            raise InvalidToken("The token names no key we know.")
        if header.get("alg") != key.algorithm:
            raise InvalidToken("The token's algorithm does not match its key.")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("The token has expired.") from None
        except jwt.PyJWTError:
            raise InvalidToken("The token is not valid.") from None
        return _principal(claims), kid


def _integer(claims: Mapping[str, Any], name: str) -> int:
    value = claims[name]
    if type(value) is not int:  # not a bool, a float or a string of digits
        raise InvalidToken("The token's claims are not valid.")
    return value


def _uuid(value: object) -> uuid.UUID:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise InvalidToken("The token's claims are not valid.")
    return uuid.UUID(value)


def _principal(claims: Mapping[str, Any]) -> Principal:
    if claims.get("typ") != ACCESS:
        raise InvalidToken("This is not an access token.")
    expires_at = _integer(claims, "exp")
    _integer(claims, "iat")
    _integer(claims, "nbf")
    version = _integer(claims, "ver") if "ver" in claims else 0
    roles, jti = claims.get("roles"), claims["jti"]
    if (
        version < 0
        or not isinstance(roles, list)
        or not all(isinstance(r, str) and r in _ROLES for r in roles)
        or not isinstance(jti, str)
        or not _JTI.fullmatch(jti)
    ):
        raise InvalidToken("The token's claims are not valid.")
    return Principal(
        user_id=_uuid(claims["sub"]),
        roles=frozenset(_ROLES[r] for r in roles),
        token_id=jti,
        expires_at=expires_at,
        session_id=_uuid(claims["sid"]) if "sid" in claims else None,
        token_version=version,
    )
