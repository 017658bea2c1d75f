"""Accounts and sessions: register, log in, refresh, log out. Services flush; the request commits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.auth import throttle
from cathouse.auth.errors import EmailTaken, InvalidCredentials, InvalidRefreshToken
from cathouse.auth.keys import SigningKeys
from cathouse.auth.models import RefreshToken, User, UserStatus
from cathouse.auth.passwords import Passwords
from cathouse.auth.repository import RefreshTokenRepository, RevocationRepository, UserRepository
from cathouse.auth.schemas import TokenPair
from cathouse.contracts.events import auth as events
from cathouse.platform.crypto import derive_key
from cathouse.platform.outbox import record
from cathouse.platform.settings import Settings

REFRESH_PREFIX = "chr_"


def normalise_email(email: str) -> str:
    return email.strip().lower()


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def client_fingerprint(user_agent: str, address: str) -> bytes:
    """Who presents a refresh token, as far as the grace for a retry goes: its User-Agent and
    address, hashed (neither is kept as such)."""
    return hashlib.sha256(f"{user_agent}\n{address}".encode()).digest()


@dataclass(frozen=True)
class AuthContext:
    """What the auth service's rules need beyond the session, built once in its lifespan."""

    settings: Settings
    passwords: Passwords
    keys: SigningKeys

    def successor(self, presented: str) -> str:
        """The refresh token that replaces ``presented``: derived from it with a key only this
        service holds, so a retry of the same refresh gets the same successor without the
        successor being stored anywhere but as its hash."""
        key = derive_key(self.settings.master_key_value(), "cathouse/auth/refresh-successor/v1")
        digest = hmac.new(key, presented.encode(), hashlib.sha256).digest()
        return REFRESH_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class AccountService:
    def __init__(self, session: AsyncSession, context: AuthContext) -> None:
        self.session = session
        self.context = context
        self.users = UserRepository(session)
        self.tokens = RefreshTokenRepository(session)
        self.revocations = RevocationRepository(session)

    async def register(self, email: str, password: str, display_name: str) -> User:
        email = normalise_email(email)
        if await self.users.email_exists(email):
            raise EmailTaken()
        user = User(
            email=email,
            password_hash=await self.context.passwords.hash(password),
            display_name=display_name,
            roles=["user"],
        )
        self.users.add(user)
        try:
            await self.session.flush()
        except IntegrityError:  # registered by a concurrent request a moment ago
            raise EmailTaken() from None
        record(self.session, events.UserRegistered(user_id=user.id, display_name=user.display_name))
        await self.session.refresh(user)
        return user

    async def login(self, email: str, password: str) -> TokenPair:
        """Every failure takes one password check and gives the same answer."""
        now = datetime.now(UTC)
        user = await self.users.by_email(normalise_email(email), for_update=True)
        if user is None or user.status != UserStatus.ACTIVE:
            await self.context.passwords.waste_time(password)
            raise InvalidCredentials()
        if throttle.is_locked(user.failed_logins, user.locked_until, now):
            await self.context.passwords.waste_time(password)
            raise InvalidCredentials()
        matches, new_hash = await self.context.passwords.verify(password, user.password_hash)
        if not matches:
            user.failed_logins = throttle.failures_after(user.failed_logins, user.last_failed_login_at, now)
            user.last_failed_login_at = now
            lock = throttle.lockout(user.failed_logins)
            user.locked_until = now + lock if lock else None
            await self.session.flush()
            raise InvalidCredentials()
        user.failed_logins, user.locked_until, user.last_failed_login_at = 0, None, None
        if new_hash is not None:  # the hashing parameters rose since this hash was made
            user.password_hash = new_hash
        return await self.start_session(user)

    async def start_session(self, user: User) -> TokenPair:
        """A new login: a new refresh-token family, which the access tokens name as ``sid``."""
        family_id = uuid.uuid4()
        refresh, _ = self._new_refresh_token(user.id, family_id, parent_id=None)
        await self.session.flush()
        return await self._pair(user, refresh, family_id)

    async def refresh(self, presented: str, client: bytes) -> TokenPair:
        """Rotate ``presented``. Presented again within the grace window by the client that rotated
        it (two tabs refreshing at once), it gets the same successor; otherwise a used token
        coming back is reuse, and revokes its whole family."""
        token_hash = hash_refresh_token(presented)
        known = await self.tokens.by_hash(token_hash)
        if known is None:
            raise InvalidRefreshToken()
        # Refreshes of one account queue here, so a retry sees the rotation it lost to committed.
        user = await self.users.by_id(known.user_id, for_update=True)
        used = await self.tokens.use(token_hash, client)
        if used is None:
            known = await self.tokens.by_hash(token_hash)
            if known is not None and known.used_at is not None and known.revoked_at is None:
                if user is not None and user.status == UserStatus.ACTIVE:
                    retried = await self._retried(known, presented, client)
                    if retried is not None:
                        return await self._pair(user, retried, known.family_id)
                await self._reused(known)
            raise InvalidRefreshToken()
        if user is None or user.status != UserStatus.ACTIVE:
            await self.tokens.revoke_family(used.family_id, "account_inactive")
            raise InvalidRefreshToken()
        refresh = self.context.successor(presented)
        self._new_refresh_token(user.id, used.family_id, parent_id=used.id, value=refresh)
        await self.session.flush()
        return await self._pair(user, refresh, used.family_id)

    async def _retried(self, token: RefreshToken, presented: str, client: bytes) -> str | None:
        """The successor of ``token`` when this is a retry within the grace window: the same
        client, soon enough, and the successor not used or revoked since."""
        grace = timedelta(seconds=self.context.settings.auth.refresh_reuse_grace)
        if token.used_at is None or token.used_by is None or not hmac.compare_digest(token.used_by, client):
            return None
        if datetime.now(UTC) - token.used_at > grace:
            return None
        successor = self.context.successor(presented)
        row = await self.tokens.by_hash(hash_refresh_token(successor))
        if row is None or row.parent_id != token.id or row.used_at is not None or row.revoked_at is not None:
            return None
        return successor

    async def _reused(self, token: RefreshToken) -> None:
        """A used token came back: someone holds a copy. End every session of that login."""
        await self.tokens.revoke_family(token.family_id, "reuse_detected")
        record(self.session, events.RefreshTokenReused(user_id=token.user_id, family_id=token.family_id))

    async def logout(self, presented: str) -> None:
        known = await self.tokens.by_hash(hash_refresh_token(presented))
        if known is not None:
            await self.tokens.revoke_family(known.family_id, "logout")

    async def logout_everywhere(self, user_id: uuid.UUID) -> int:
        """End every session: refresh tokens revoked, and every access token issued so far
        refused by every service within seconds."""
        user = await self.users.by_id(user_id, for_update=True)
        if user is not None:
            await self.revocations.record(user, end_sessions=True)
        return await self.tokens.revoke_user(user_id, "logout_all")

    def _new_refresh_token(
        self, user_id: uuid.UUID, family_id: uuid.UUID, *, parent_id: uuid.UUID | None, value: str | None = None
    ) -> tuple[str, RefreshToken]:
        value = value or REFRESH_PREFIX + secrets.token_urlsafe(32)
        ttl = timedelta(seconds=self.context.settings.auth.refresh_token_ttl)
        row = RefreshToken(
            user_id=user_id,
            family_id=family_id,
            parent_id=parent_id,
            token_hash=hash_refresh_token(value),
            expires_at=datetime.now(UTC) + ttl,
        )
        self.tokens.add(row)
        return value, row

    async def _pair(self, user: User, refresh: str, family_id: uuid.UUID) -> TokenPair:
        settings = self.context.settings
        now = int(datetime.now(UTC).timestamp())
        ttl = settings.tokens.access_token_ttl
        access = await self.context.keys.sign(
            {
                "iss": settings.tokens.issuer,
                "aud": settings.tokens.audience,
                "sub": str(user.id),
                "iat": now,
                "nbf": now,
                "exp": now + ttl,
                "jti": uuid.uuid4().hex,
                "typ": "access",
                "sid": str(family_id),
                "ver": user.token_version,
                "roles": list(user.roles),
            }
        )
        return TokenPair(
            access_token=access,
            expires_in=ttl,
            refresh_token=refresh,
            refresh_expires_in=settings.auth.refresh_token_ttl,
        )
