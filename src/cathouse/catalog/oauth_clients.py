"""Each OAuth 2.0 cat's client at its provider: the id in clear, the secret sealed in an envelope.

The secret is written once by the cat's publisher and read back only by the platform, to speak
to the provider's token endpoint; no answer ever carries it.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.catalog.models import OAuthClient
from cathouse.platform.crypto import derive_key, seal, unseal

PURPOSE = "catalog-oauth-clients"


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str


def _key_aad(cat_id: uuid.UUID) -> bytes:
    return f"oauth-client-key:{cat_id}".encode()


def _secret_aad(cat_id: uuid.UUID, client_id: str) -> bytes:
    return f"oauth-client-secret:{cat_id}:{client_id}".encode()


class OAuthClients:
    def __init__(self, session: AsyncSession, master_key: str) -> None:
        self.session = session
        self._wrapping_key = derive_key(master_key, PURPOSE)

    async def get(self, cat_id: uuid.UUID) -> OAuthClient | None:
        return await self.session.get(OAuthClient, cat_id)

    async def put(self, cat_id: uuid.UUID, client_id: str, client_secret: str) -> OAuthClient:
        data_key = os.urandom(32)
        row = await self.session.get(OAuthClient, cat_id, with_for_update=True)
        if row is None:
            row = OAuthClient(cat_id=cat_id)
            self.session.add(row)
        row.client_id = client_id
        row.wrapped_key = seal(self._wrapping_key, data_key, _key_aad(cat_id))
        row.sealed_secret = seal(data_key, client_secret.encode(), _secret_aad(cat_id, client_id))
        row.updated_at = datetime.now(UTC)
        await self.session.flush()
        return row

    async def reveal(self, cat_id: uuid.UUID) -> ClientCredentials | None:
        row = await self.get(cat_id)
        if row is None:
            return None
        data_key = unseal(self._wrapping_key, row.wrapped_key, _key_aad(cat_id))
        secret = unseal(data_key, row.sealed_secret, _secret_aad(cat_id, row.client_id)).decode()
        return ClientCredentials(row.client_id, secret)
