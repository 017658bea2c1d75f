"""Each cat's secrets for signing provisioning webhooks (Standard Webhooks ``whsec_`` keys).

Sealed by a key derived from the master key, bound to their cat and row. A rotation keeps the
old secret signing beside the new one for an overlap, so a cat can switch without a gap.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cathouse.catalog.models import WebhookSecret
from cathouse.platform.crypto import derive_key, seal, unseal
from cathouse.webhooks import generate_secret

PURPOSE = "catalog-webhook-secrets"


def _aad(cat_id: uuid.UUID, secret_id: uuid.UUID) -> bytes:
    return f"webhook-secret:{cat_id}:{secret_id}".encode()


class WebhookSecrets:
    def __init__(self, session: AsyncSession, master_key: str) -> None:
        self.session = session
        self._key = derive_key(master_key, PURPOSE)

    async def live(self, cat_id: uuid.UUID) -> list[tuple[WebhookSecret, str]]:
        """Every secret that signs now, newest first."""
        statement = (
            select(WebhookSecret)
            .where(
                WebhookSecret.cat_id == cat_id,
                or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > datetime.now(UTC)),
            )
            .order_by(WebhookSecret.created_at.desc())
        )
        rows = (await self.session.scalars(statement)).all()
        return [(row, unseal(self._key, row.sealed_secret, _aad(cat_id, row.id)).decode()) for row in rows]

    async def ensure(self, cat_id: uuid.UUID) -> None:
        if not await self.live(cat_id):
            self._add(cat_id)
            await self.session.flush()

    async def rotate(self, cat_id: uuid.UUID, overlap: timedelta) -> tuple[WebhookSecret, str]:
        """A new secret; the ones signing now go on signing for ``overlap``, then stop."""
        ends = datetime.now(UTC) + overlap
        await self.session.execute(
            update(WebhookSecret)
            .where(
                WebhookSecret.cat_id == cat_id, or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > ends)
            )
            .values(expires_at=ends)
        )
        row, secret = self._add(cat_id)
        await self.session.flush()
        return row, secret

    def _add(self, cat_id: uuid.UUID) -> tuple[WebhookSecret, str]:
        secret = generate_secret()
        row = WebhookSecret(id=uuid.uuid4(), cat_id=cat_id)
        row.sealed_secret = seal(self._key, secret.encode(), _aad(cat_id, row.id))
        self.session.add(row)
        return row, secret
