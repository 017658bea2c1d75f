"""An installation's secret fields: sealed with its own data key, readable only by the proxy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.installation.keyring import Keyring, decrypt_field, encrypt_field, fingerprint
from cathouse.installation.models import Credential
from cathouse.installation.repository import InstallationRepository


class Credentials:
    def __init__(self, session: AsyncSession, keyring: Keyring) -> None:
        self.session = session
        self.keyring = keyring
        self.installations = InstallationRepository(session)

    async def create(self, installation_id: uuid.UUID, secrets: dict[str, str]) -> None:
        data_key, row = await self.keyring.new_data_key(self.session, installation_id)
        self.session.add(row)
        self._seal(data_key, installation_id, secrets)
        await self.session.flush()

    async def replace(self, installation_id: uuid.UUID, secrets: dict[str, str]) -> None:
        """``PUT`` semantics: afterwards the installation has exactly these secrets."""
        row = await self.installations.data_key(installation_id, for_update=True)
        assert row is not None, "every installation that is not uninstalled has a data key"
        data_key = await self.keyring.unwrap(row)
        await self.installations.delete_credentials(installation_id)
        await self.session.flush()
        self._seal(data_key, installation_id, secrets)
        await self.session.flush()

    def _seal(self, data_key: bytes, installation_id: uuid.UUID, secrets: dict[str, str]) -> None:
        for field, value in secrets.items():
            self.session.add(
                Credential(
                    installation_id=installation_id,
                    field=field,
                    ciphertext=encrypt_field(data_key, installation_id, field, value),
                    fingerprint=fingerprint(data_key, field, value),
                )
            )

    async def reveal(self, installation_id: uuid.UUID) -> dict[str, str]:
        """The plaintext secrets, for injecting into a call to the cat. Never for an API response."""
        row = await self.installations.data_key(installation_id)
        if row is None:
            return {}
        data_key = await self.keyring.unwrap(row)
        stored = (await self.installations.credentials([installation_id]))[installation_id]
        return {c.field: decrypt_field(data_key, installation_id, c.field, c.ciphertext) for c in stored}

    async def destroy(self, installation_id: uuid.UUID) -> None:
        """Forget the data key and the ciphertexts (OAuth tokens too): the secrets can never be read again."""
        row = await self.installations.data_key(installation_id, for_update=True)
        if row is not None and row.wrapped_key is not None:
            row.wrapped_key, row.destroyed_at = None, datetime.now(UTC)
        await self.installations.delete_credentials(installation_id)
        await self.installations.delete_tokens(installation_id)
        await self.session.flush()
