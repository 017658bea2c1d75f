"""An installation's OAuth 2.0 tokens: sealed with its data key, refreshed once across processes.

The tokens are credential fields like any other secret setting: encrypted with the
installation's own data key, bound by associated data to the installation and the field, and
unreadable for good once uninstalling destroys that key. Only the proxy's process asks for the
access token in clear (``TokenKeeper``, behind ``contracts.secrets.SecretReader``).

One refresh per expiry, whatever the number of proxy processes: the refresher holds a
PostgreSQL advisory lock on the installation for the provider round trip and writes the new
tokens (a rotated refresh token with them, in one row) before letting go. A process that finds
the lock taken uses the old token while it is still valid, or waits for the lock and takes the
result. ``generation`` counts the refreshes, so a process that was told the cat refused
generation n can see that n+1 landed meanwhile rather than refresh again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from loguru import logger
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cathouse.contracts.reads import CatReader
from cathouse.contracts.secrets import AccessToken, ProviderOptions, TokenUnavailable
from cathouse.installation import lifecycle
from cathouse.installation.keyring import Keyring, decrypt_field, encrypt_field
from cathouse.installation.models import InstallationStatus, OAuthToken
from cathouse.installation.oauth.provider import Grant, OAuthSpec, Provider, ProviderError
from cathouse.installation.repository import InstallationRepository
from cathouse.installation.service import InstallationService

ACCESS, REFRESH = "oauth.access_token", "oauth.refresh_token"


@dataclass(frozen=True)
class HeldTokens:
    access: str = field(repr=False)
    refresh: str | None = field(repr=False)
    generation: int
    issued_at: datetime
    expires_at: datetime | None

    def refresh_at(self, margin: float) -> float | None:
        """When to refresh (Unix seconds): ``margin`` before expiry, at most a quarter of the lifetime."""
        if self.expires_at is None:
            return None
        lifetime = (self.expires_at - self.issued_at).total_seconds()
        return self.expires_at.timestamp() - min(margin, max(lifetime, 0) / 4)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at.timestamp()


class TokenStore:
    def __init__(self, session: AsyncSession, keyring: Keyring) -> None:
        self.session = session
        self.keyring = keyring
        self.installations = InstallationRepository(session)

    async def _data_key(self, installation_id: uuid.UUID) -> bytes | None:
        row = await self.installations.data_key(installation_id)
        if row is None or row.wrapped_key is None:
            return None
        return await self.keyring.unwrap(row)

    async def read(self, installation_id: uuid.UUID) -> HeldTokens | None:
        statement = (
            select(OAuthToken)
            .where(OAuthToken.installation_id == installation_id)
            .execution_options(populate_existing=True)
        )
        row = (await self.session.scalars(statement)).one_or_none()
        data_key = await self._data_key(installation_id) if row is not None else None
        if row is None or data_key is None:
            return None
        refresh = None
        if row.refresh_token is not None:
            refresh = decrypt_field(data_key, installation_id, REFRESH, row.refresh_token)
        return HeldTokens(
            access=decrypt_field(data_key, installation_id, ACCESS, row.access_token),
            refresh=refresh,
            generation=row.generation,
            issued_at=row.issued_at,
            expires_at=row.expires_at,
        )

    async def store(self, installation_id: uuid.UUID, grant: Grant, *, kept_refresh: str | None = None) -> HeldTokens:
        """Keep what the provider issued, replacing what was held; a refresh answer without a new
        refresh token keeps ``kept_refresh`` (RFC 6749 6: the old one stays good)."""
        data_key = await self._data_key(installation_id)
        if data_key is None:
            raise TokenUnavailable("not_connected", "This installation's credentials were destroyed.")
        refresh = grant.refresh_token or kept_refresh
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=grant.expires_in) if grant.expires_in is not None else None
        row = await self.session.get(OAuthToken, installation_id, with_for_update=True, populate_existing=True)
        if row is None:
            row = OAuthToken(installation_id=installation_id, generation=0)
            self.session.add(row)
        row.access_token = encrypt_field(data_key, installation_id, ACCESS, grant.access_token)
        row.refresh_token = encrypt_field(data_key, installation_id, REFRESH, refresh) if refresh else None
        row.token_type, row.scope = grant.token_type, grant.scope
        row.issued_at, row.expires_at = now, expires
        row.generation = (row.generation or 0) + 1
        await self.session.flush()
        return HeldTokens(grant.access_token, refresh, row.generation, now, expires)

    async def forget(self, installation_id: uuid.UUID) -> None:
        await self.session.execute(delete(OAuthToken).where(OAuthToken.installation_id == installation_id))


def _lock_key(installation_id: uuid.UUID) -> int:
    return int.from_bytes(hashlib.sha256(b"oauth-refresh:" + installation_id.bytes).digest()[:8], "big", signed=True)


@dataclass
class _Outcome:
    token: AccessToken | None = None
    error: TokenUnavailable | None = None


class TokenKeeper:
    """Access tokens for the proxy: the current one, refreshed when due, once across processes.

    In one process, callers asking for the same installation at once share one lookup."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keyring: Keyring,
        cats: CatReader,
        master_key: str,
        options: ProviderOptions,
    ) -> None:
        self.sessions = sessions
        self.keyring = keyring
        self.cats = cats
        self.master_key = master_key
        self.options = options
        self._inflight: dict[uuid.UUID, asyncio.Task[AccessToken]] = {}

    async def access_token(self, installation_id: uuid.UUID, *, rejected: int | None = None) -> AccessToken:
        task = self._inflight.get(installation_id)
        if task is None:
            task = asyncio.create_task(self._current(installation_id, rejected))
            self._inflight[installation_id] = task
            task.add_done_callback(lambda done: self._settled(installation_id, done))
        return await asyncio.shield(task)

    def _settled(self, installation_id: uuid.UUID, task: asyncio.Task[AccessToken]) -> None:
        if self._inflight.get(installation_id) is task:
            del self._inflight[installation_id]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter has it already

    def _token(self, held: HeldTokens) -> AccessToken:
        return AccessToken(held.access, held.generation, held.refresh_at(self.options.refresh_margin))

    def _good(self, held: HeldTokens | None, rejected: int | None, now: float) -> bool:
        if held is None or (rejected is not None and held.generation <= rejected):
            return False
        due = held.refresh_at(self.options.refresh_margin)
        return due is None or now < due

    async def _current(self, installation_id: uuid.UUID, rejected: int | None) -> AccessToken:
        outcome = _Outcome()
        async with self.sessions() as session, session.begin():
            store = TokenStore(session, self.keyring)
            held = await store.read(installation_id)
            if self._good(held, rejected, time.time()):
                assert held is not None
                return self._token(held)
            key = {"key": _lock_key(installation_id)}
            if not await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), key):
                # Another process is refreshing: the old token serves while it lasts.
                if held is not None and not held.expired(time.time()) and held.generation != rejected:
                    return self._token(held)
                await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), key)
            held = await store.read(installation_id)
            if self._good(held, rejected, time.time()):
                assert held is not None
                return self._token(held)
            outcome = await self._renew(session, store, installation_id, held)
        # Here the transaction has committed: a broken grant's new status is kept.
        if outcome.error is not None:
            raise outcome.error
        assert outcome.token is not None
        return outcome.token

    async def _renew(
        self, session: AsyncSession, store: TokenStore, installation_id: uuid.UUID, held: HeldTokens | None
    ) -> _Outcome:
        installation = await store.installations.get(installation_id)
        version = await self.cats.version_by_id(session, installation.version_id) if installation else None
        spec = OAuthSpec.of(version.credentials) if version else None
        client = await self.cats.oauth_client(session, installation.cat_id, self.master_key) if installation else None
        if installation is None or spec is None or client is None:
            return _Outcome(error=TokenUnavailable("not_connected", "This installation has no OAuth client to use."))
        provider = Provider(spec, client, self.options)
        try:
            if spec.grant == "client_credentials":
                grant = await provider.client_credentials()
            elif held is not None and held.refresh is not None:
                grant = await provider.refresh(held.refresh)
            else:
                return _Outcome(error=TokenUnavailable("not_connected", "Reconnect this installation at its provider."))
        except ProviderError as exc:
            if exc.kind == "invalid_grant":
                await self._broken(session, store, installation_id, str(exc))
                return _Outcome(error=TokenUnavailable("not_connected", f"Reconnect this installation: {exc}."))
            logger.warning("oauth token refresh failed", installation_id=str(installation_id), reason=str(exc))
            if held is not None and not held.expired(time.time()):
                return _Outcome(token=self._token(held))  # the old one still works; try again on the next call
            return _Outcome(error=TokenUnavailable("provider_unavailable", f"The cat's provider failed: {exc}."))
        renewed = await store.store(installation_id, grant, kept_refresh=held.refresh if held else None)
        logger.info("oauth token renewed", installation_id=str(installation_id), generation=renewed.generation)
        return _Outcome(token=self._token(renewed))

    async def _broken(self, session: AsyncSession, store: TokenStore, installation_id: uuid.UUID, why: str) -> None:
        """The grant is gone at the provider (revoked, expired): forget the tokens, and tell the owner
        through the installation's status (its event feeds their activity and notifications)."""
        await store.forget(installation_id)
        service = InstallationService(session, self.keyring, self.cats)
        installation = await service.installations.get(installation_id, for_update=True)
        if (
            installation is not None
            and InstallationStatus.CREDENTIALS_INVALID in lifecycle.TRANSITIONS[installation.status]
        ):
            await service.move(installation, InstallationStatus.CREDENTIALS_INVALID, reason=f"{why}; reconnect it")
        logger.warning("oauth grant refused", installation_id=str(installation_id), reason=why)
