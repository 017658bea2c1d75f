"""An installation's credentials in clear: for the proxy alone.

The installation service keeps the secret settings encrypted and registers a :class:`SecretVault`;
the proxy unlocks it in its lifespan, with the master key, to inject the secrets into calls to
the cat. No other service may import this module (an import-linter contract in pyproject.toml
says so), so none can ask for a credential in clear.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@dataclass(frozen=True)
class AccessToken:
    """An OAuth 2.0 installation's current access token, and when to ask for the next one."""

    value: str = field(repr=False)
    generation: int
    # Unix seconds: from ``refresh_at`` on, ask again (a refresh is due); None: it never expires.
    refresh_at: float | None


class TokenUnavailable(Exception):
    """No access token can be had: ``not_connected`` (never granted, or the grant was revoked at
    the provider: the owner must reconnect), or ``provider_unavailable`` (the provider failed;
    try again). The message is safe to show: it never holds a token."""

    def __init__(self, reason: Literal["not_connected", "provider_unavailable"], message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ProviderOptions:
    """How the proxy's process speaks to cats' OAuth 2.0 providers (from the installation settings)."""

    redirect_uri: str
    timeout: float
    refresh_margin: float
    allow_private: bool


class SecretReader(Protocol):
    """Decrypts an installation's secret fields, for the proxy to inject into calls to the cat."""

    async def secrets(self, session: AsyncSession, installation_id: uuid.UUID) -> dict[str, str]: ...

    async def access_token(self, installation_id: uuid.UUID, *, rejected: int | None = None) -> AccessToken:
        """The installation's current OAuth 2.0 access token, refreshed first when it is due (or
        when the cat refused generation ``rejected``): one refresh across every process, the
        others waiting for it or using the old token while it is still valid.

        Raises :class:`TokenUnavailable`."""
        ...


class SecretVault(Protocol):
    async def unlock(
        self, sessions: async_sessionmaker[AsyncSession], master_key: str, oauth: ProviderOptions
    ) -> SecretReader:
        """A reader holding the unwrapped keyring; refuses a master key that cannot unwrap it.

        Called in a lifespan: the keys live as long as the process serving the proxy."""
        ...
