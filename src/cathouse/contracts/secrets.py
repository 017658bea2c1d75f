"""An installation's credentials in clear: for the proxy alone.

The installation service keeps the secret settings encrypted and registers a :class:`SecretVault`;
the proxy unlocks it in its lifespan, with the master key, to inject the secrets into calls to
the cat. No other service may import this module (an import-linter contract in pyproject.toml
says so), so none can ask for a credential in clear.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


class SecretReader(Protocol):
    """Decrypts an installation's secret fields, for the proxy to inject into calls to the cat."""

    async def secrets(self, session: AsyncSession, installation_id: uuid.UUID) -> dict[str, str]: ...


class SecretVault(Protocol):
    async def unlock(self, sessions: async_sessionmaker[AsyncSession], master_key: str) -> SecretReader:
        """A reader holding the unwrapped keyring; refuses a master key that cannot unwrap it.

        Called in a lifespan: the keys live as long as the process serving the proxy."""
        ...
