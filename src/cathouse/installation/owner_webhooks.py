"""Each user's own notification webhook: its URL and its Standard Webhooks ``whsec_`` secret.

The secret is sealed by a key derived from the master key for this purpose alone, bound to its
user, so a sealed secret copied onto another user's row does not open. It is shown once, when
made or rotated; afterwards only deliveries use it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.installation.models import Installation, OwnerWebhook
from cathouse.platform.crypto import derive_key, seal, unseal
from cathouse.platform.errors import NotFound
from cathouse.webhooks import generate_secret

PURPOSE = "installation-owner-webhooks"


class NoOwnerWebhook(NotFound):
    """You have registered no webhook."""

    def __init__(self) -> None:
        super().__init__("You have registered no webhook.")


def _aad(user_id: uuid.UUID) -> bytes:
    return f"owner-webhook:{user_id}".encode()


class OwnerWebhooks:
    def __init__(self, session: AsyncSession, master_key: str) -> None:
        self.session = session
        self._key = derive_key(master_key, PURPOSE)

    async def get(self, user_id: uuid.UUID, *, lock: bool = False) -> OwnerWebhook | None:
        statement = select(OwnerWebhook).where(OwnerWebhook.user_id == user_id)
        return await self.session.scalar(statement.with_for_update() if lock else statement)

    async def read(self, user_id: uuid.UUID) -> OwnerWebhook:
        found = await self.get(user_id)
        if found is None:
            raise NoOwnerWebhook()
        return found

    async def secret(self, user_id: uuid.UUID) -> tuple[str, str] | None:
        """The webhook's URL and its secret, unsealed to sign a delivery; None when there is none."""
        found = await self.get(user_id)
        if found is None:
            return None
        return found.url, unseal(self._key, found.sealed_secret, _aad(user_id)).decode()

    async def secrets_of_owner(self, installation_id: uuid.UUID) -> list[str]:
        """The secret that signs a notification about the installation: its owner's, if they still have one."""
        owner = await self.session.scalar(select(Installation.user_id).where(Installation.id == installation_id))
        found = await self.secret(owner) if owner is not None else None
        return [found[1]] if found is not None else []

    async def put(self, user_id: uuid.UUID, url: str, *, rotate: bool) -> tuple[OwnerWebhook, str | None]:
        """Register or replace the URL; a new secret when there was none or ``rotate``: returned
        once, here. Deliveries already made keep the URL they were made for."""
        found = await self.get(user_id, lock=True)
        secret = generate_secret() if found is None or rotate else None
        now = datetime.now(UTC)
        if found is None:
            found = OwnerWebhook(user_id=user_id, created_at=now)
            self.session.add(found)
        found.url, found.updated_at = url, now
        if secret is not None:
            found.sealed_secret = seal(self._key, secret.encode(), _aad(user_id))
        await self.session.flush()
        return found, secret

    async def delete(self, user_id: uuid.UUID) -> None:
        deleted = await self.session.execute(
            delete(OwnerWebhook).where(OwnerWebhook.user_id == user_id).returning(OwnerWebhook.user_id)
        )
        if deleted.scalar() is None:
            raise NoOwnerWebhook()
        await self.session.flush()
