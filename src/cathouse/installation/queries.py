"""What other services may read of the installation schema: read-only. Secrets only through
``SecretReader``, for the proxy to inject them into calls to the cat."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cathouse.installation.api_keys import hash_key
from cathouse.installation.credentials import Credentials
from cathouse.installation.keyring import Keyring
from cathouse.installation.models import ApiKey, GrantedPermission, Installation


@dataclass(frozen=True)
class InstallCounts:
    total: int
    active: int


async def install_counts(session: AsyncSession, cat_id: uuid.UUID) -> InstallCounts:
    """Installs of a cat that were provisioned (ever, and running now)."""
    row = (
        await session.execute(
            select(
                func.count().filter(Installation.activated_at.is_not(None)),
                func.count().filter(Installation.status == "active"),
            ).where(Installation.cat_id == cat_id)
        )
    ).one()
    return InstallCounts(total=int(row[0]), active=int(row[1]))


async def has_installed(session: AsyncSession, user_id: uuid.UUID, cat_id: uuid.UUID) -> bool:
    """Whether the user ever had an installation of the cat provisioned (a verified reviewer)."""
    statement = select(Installation.id).where(
        Installation.user_id == user_id, Installation.cat_id == cat_id, Installation.activated_at.is_not(None)
    )
    return (await session.scalar(statement.limit(1))) is not None


@dataclass(frozen=True)
class ProxyView:
    """What the proxy enforces for one installation: who owns it, its state, its pinned
    version and what its owner granted."""

    id: uuid.UUID
    user_id: uuid.UUID
    cat_id: uuid.UUID
    version_id: uuid.UUID
    status: str
    granted: frozenset[str]


async def proxy_view(session: AsyncSession, installation_id: uuid.UUID) -> ProxyView | None:
    installation = await session.get(Installation, installation_id)
    if installation is None:
        return None
    granted = await session.scalars(
        select(GrantedPermission.permission).where(GrantedPermission.installation_id == installation_id)
    )
    return ProxyView(
        id=installation.id,
        user_id=installation.user_id,
        cat_id=installation.cat_id,
        version_id=installation.version_id,
        status=installation.status,
        granted=frozenset(granted),
    )


@dataclass(frozen=True)
class KeyOwner:
    api_key_id: uuid.UUID
    installation_id: uuid.UUID


async def api_key_owner(session: AsyncSession, key: str) -> KeyOwner | None:
    """The installation an unrevoked API key belongs to, found by the key's hash."""
    row = (
        await session.execute(
            select(ApiKey.id, ApiKey.installation_id).where(
                ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)
            )
        )
    ).one_or_none()
    return None if row is None else KeyOwner(api_key_id=row[0], installation_id=row[1])


class SecretReader:
    """Decrypts an installation's secret fields, for the proxy to inject into calls to the cat.

    Built in a lifespan: ``load`` refuses a master key that cannot unwrap the keyring."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], master_key: str) -> None:
        self._keyring = Keyring(sessions, master_key)

    async def load(self) -> None:
        await self._keyring.load()

    async def secrets(self, session: AsyncSession, installation_id: uuid.UUID) -> dict[str, str]:
        return await Credentials(session, self._keyring).reveal(installation_id)
