"""What other services may read of the installation schema: read-only. Secrets only through
the :class:`~cathouse.contracts.secrets.SecretVault`, for the proxy to inject them into calls to the cat."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cathouse.contracts.reads import CatReader, InstallationReader, InstallCounts, KeyOwner, ProxyView
from cathouse.contracts.secrets import AccessToken, ProviderOptions, SecretReader, SecretVault
from cathouse.installation.api_keys import hash_key
from cathouse.installation.credentials import Credentials
from cathouse.installation.keyring import Keyring
from cathouse.installation.models import ApiKey, GrantedPermission, Installation, InstallationStatus
from cathouse.installation.oauth.tokens import TokenKeeper
from cathouse.platform.registry import Registry


class Installations:
    async def install_counts(self, session: AsyncSession, cat_id: uuid.UUID) -> InstallCounts:
        row = (
            await session.execute(
                select(
                    func.count().filter(Installation.activated_at.is_not(None)),
                    func.count().filter(Installation.status == InstallationStatus.ACTIVE),
                ).where(Installation.cat_id == cat_id)
            )
        ).one()
        return InstallCounts(total=int(row[0]), active=int(row[1]))

    async def has_installed(self, session: AsyncSession, user_id: uuid.UUID, cat_id: uuid.UUID) -> bool:
        statement = select(Installation.id).where(
            Installation.user_id == user_id, Installation.cat_id == cat_id, Installation.activated_at.is_not(None)
        )
        return (await session.scalar(statement.limit(1))) is not None

    async def proxy_view(self, session: AsyncSession, installation_id: uuid.UUID) -> ProxyView | None:
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

    async def api_key_owner(self, session: AsyncSession, key: str) -> KeyOwner | None:
        row = (
            await session.execute(
                select(ApiKey.id, ApiKey.installation_id).where(
                    ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)
                )
            )
        ).one_or_none()
        return None if row is None else KeyOwner(api_key_id=row[0], installation_id=row[1])


class UnlockedSecrets:
    """Decrypts an installation's secret fields and OAuth tokens with a loaded keyring, for the proxy alone."""

    def __init__(self, keyring: Keyring, tokens: TokenKeeper) -> None:
        self._keyring = keyring
        self._tokens = tokens

    async def secrets(self, session: AsyncSession, installation_id: uuid.UUID) -> dict[str, str]:
        return await Credentials(session, self._keyring).reveal(installation_id)

    async def access_token(self, installation_id: uuid.UUID, *, rejected: int | None = None) -> AccessToken:
        return await self._tokens.access_token(installation_id, rejected=rejected)


class Vault:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    async def unlock(
        self, sessions: async_sessionmaker[AsyncSession], master_key: str, oauth: ProviderOptions
    ) -> SecretReader:
        keyring = Keyring(sessions, master_key)
        await keyring.load()  # refuses a master key that cannot unwrap the keyring
        tokens = TokenKeeper(sessions, keyring, self._registry.get(CatReader), master_key, oauth)
        return UnlockedSecrets(keyring, tokens)


def register(registry: Registry) -> None:
    installations: InstallationReader = Installations()
    registry.provide(InstallationReader, installations)
    # Credentials in clear, for the proxy only: no other service may import contracts.secrets.
    vault: SecretVault = Vault(registry)
    registry.provide(SecretVault, vault)
