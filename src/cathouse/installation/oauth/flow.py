"""The authorization-code flow: send the owner to the provider, take the code when they return.

``start`` records a single-use state, bound to the owner and the installation, valid for
``oauth_state_ttl`` seconds, and answers the provider's authorization URL (with a PKCE
challenge when the version asks for one). ``complete`` checks the state the provider sends
back, exchanges the code, keeps the tokens sealed and moves the installation on: an
installation waiting for its first grant goes on to provisioning, one whose grant broke is
running again.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from loguru import logger
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.contracts.events import installation as events
from cathouse.contracts.reads import CatReader
from cathouse.installation import lifecycle
from cathouse.installation.keyring import Keyring
from cathouse.installation.models import Installation, InstallationStatus, OAuthState
from cathouse.installation.oauth.errors import (
    ConsentDenied,
    NoOAuthClient,
    NotOAuth,
    ProviderFailed,
    StateInvalid,
    StateOfAnotherUser,
)
from cathouse.installation.oauth.provider import OAuthSpec, Provider, ProviderError, new_verifier, provider_options
from cathouse.installation.oauth.tokens import TokenStore
from cathouse.installation.service import InstallationService
from cathouse.platform.crypto import derive_key, seal, unseal
from cathouse.platform.security import Principal
from cathouse.platform.settings import Settings

PURPOSE = "installation-oauth-states"
# Where an authorization may start (a first grant, or a reconnect) and where it may land.
CONNECTABLE = lifecycle.RUNNING | {InstallationStatus.AUTHORIZING, InstallationStatus.SUSPENDED}


@dataclass(frozen=True)
class Completed:
    installation: Installation
    return_to: str | None


def _hash(state: str) -> bytes:
    return hashlib.sha256(state.encode()).digest()


class OAuthFlow:
    def __init__(self, session: AsyncSession, keyring: Keyring, cats: CatReader, settings: Settings) -> None:
        self.session = session
        self.cats = cats
        self.settings = settings
        self.config = settings.installation
        self.service = InstallationService(session, keyring, cats)
        self.tokens = TokenStore(session, keyring)
        self._sealing_key = derive_key(settings.master_key_value(), PURPOSE)

    async def provider(self, installation: Installation, *, grant: str | None = "authorization_code") -> Provider:
        version = await self.service.version_of(installation)
        spec = OAuthSpec.of(version.credentials)
        if spec is None or (grant is not None and spec.grant != grant):
            raise NotOAuth()
        client = await self.cats.oauth_client(self.session, installation.cat_id, self.settings.master_key_value())
        if client is None:
            raise NoOAuthClient()
        return Provider(spec, client, provider_options(self.settings))

    async def start(self, principal: Principal, installation_id: uuid.UUID, return_to: str | None) -> str:
        """The provider's authorization URL for the owner's installation."""
        installation = await self.service.owned(principal, installation_id, lock=True)
        if installation.status not in CONNECTABLE:
            raise lifecycle.IllegalTransition(installation.status, "connected")
        provider = await self.provider(installation)
        state = secrets.token_urlsafe(32)
        verifier = new_verifier() if provider.spec.pkce else None
        now = datetime.now(UTC)
        # States nobody came back with are kept a day past expiry, then cleared by the next start.
        await self.session.execute(delete(OAuthState).where(OAuthState.expires_at < now - timedelta(days=1)))
        digest = _hash(state)
        self.session.add(
            OAuthState(
                state_hash=digest,
                installation_id=installation.id,
                user_id=principal.user_id,
                sealed_verifier=seal(self._sealing_key, verifier.encode(), digest) if verifier else None,
                return_to=return_to,
                expires_at=now + timedelta(seconds=self.config.oauth_state_ttl),
            )
        )
        await self.session.flush()
        return provider.authorization_url(state, verifier)

    async def complete(self, principal: Principal, state: str, code: str | None, error: str | None) -> Completed:
        """Check the returning state and exchange the code. Every refusal names why; a state that
        was good for this user is spent by its first use, whatever the outcome."""
        digest = _hash(state)
        row = (
            await self.session.scalars(select(OAuthState).where(OAuthState.state_hash == digest).with_for_update())
        ).one_or_none()
        if row is None:
            raise StateInvalid("unknown", "This authorization was not started here; start again from the installation.")
        if row.user_id != principal.user_id:
            raise StateOfAnotherUser()
        return_to = row.return_to
        if row.used_at is not None:
            raise StateInvalid("used", "This authorization was already completed; it cannot be used again.", return_to)
        now = datetime.now(UTC)
        if row.expires_at <= now:
            raise StateInvalid("expired", "This authorization took too long and expired; start again.", return_to)
        row.used_at = now
        await self.session.flush()
        installation = await self.service.installations.get(row.installation_id, for_update=True)
        if installation is None or installation.status not in CONNECTABLE:
            status = installation.status if installation else "uninstalled"
            raise StateInvalid("inactive", f"The installation is {status.replace('_', ' ')} now.", return_to)
        if error is not None or not code:
            raise ConsentDenied(error or "no_code", return_to)
        provider = await self.provider(installation)
        verifier = unseal(self._sealing_key, row.sealed_verifier, digest).decode() if row.sealed_verifier else None
        try:
            grant = await provider.exchange(code, verifier)
        except ProviderError as exc:
            raise ProviderFailed(str(exc), return_to) from None
        await self.tokens.store(installation.id, grant)
        await self.connected(installation, principal)
        return Completed(installation, return_to)

    async def connected(self, installation: Installation, principal: Principal) -> None:
        """Tokens are held: the installation moves on, and its feed says its credentials changed."""
        version = await self.service.version_of(installation)
        self.service.event(installation, events.InstallationSecretsReplaced, version.version, fields=["oauth_tokens"])
        if installation.status == InstallationStatus.AUTHORIZING:
            await self.service.move(installation, InstallationStatus.PENDING, by=principal.user_id)
        elif installation.status == InstallationStatus.CREDENTIALS_INVALID:
            pending = installation.target_version_id is not None
            target = InstallationStatus.PERMISSIONS_PENDING if pending else InstallationStatus.ACTIVE
            await self.service.move(installation, target, reason="reconnected", by=principal.user_id)
        installation.updated_at = datetime.now(UTC)
        await self.session.flush()

    async def revoke(self, installation: Installation) -> None:
        """RFC 7009: tell the provider the tokens are no longer wanted, before they are shredded.
        An uninstall goes on whatever the provider answers; a failure is logged (never a token)."""
        try:
            provider = await self.provider(installation, grant=None)
        except (NotOAuth, NoOAuthClient):
            return
        held = await self.tokens.read(installation.id)
        if held is None or provider.spec.revocation_url is None:
            return
        hints: tuple[tuple[str | None, Literal["refresh_token", "access_token"]], ...] = (
            (held.refresh, "refresh_token"),
            (held.access, "access_token"),
        )
        for token, hint in hints:
            if token is None:
                continue
            try:
                await provider.revoke(token, hint)
            except ProviderError as exc:
                logger.warning("oauth token not revoked", installation_id=str(installation.id), reason=str(exc))
